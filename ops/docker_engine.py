"""A Docker engine for `make test-containers`: Debian's docker.io, started here by PID file.

    python -m ops.docker_engine start | stop | status

`start` installs docker.io (and debootstrap, for the stand-in base image) when missing, then
starts `dockerd` unless one already answers. It runs with no bridge network and no iptables
rules, so containers only ever use the host network: all traffic stays on loopback.
`stop` stops the dockerd that `start` launched here (by PID file), never another one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from ops.processes import RUN, running_pid, spawn, stop_pid_file

FOLDER = RUN / "dockerd"
MARKER = "dockerd"
SOCKET = "/var/run/docker.sock"
READY_DEADLINE_S = 60.0
# Debian packages this check needs; apt is asked only for the missing ones.
PACKAGES = {"dockerd": "docker.io", "debootstrap": "debootstrap"}
SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"


def say(message: str) -> None:
    print(f"[containers] {message}", flush=True)


def dockerd_command() -> list[str]:
    """dockerd with the host network only (no docker0 bridge, no NAT rules)."""
    return [
        shutil.which("dockerd", path=SBIN) or "dockerd",
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
        f"--host=unix://{SOCKET}",
        f"--pidfile={FOLDER / 'dockerd.pid'}",
    ]


def missing_packages() -> list[str]:
    return [
        package
        for program, package in PACKAGES.items()
        if shutil.which(program) is None and shutil.which(program, path=SBIN) is None
    ]


def install() -> None:
    """apt-get install what is missing (root only; the .debs stay in apt's cache)."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"[containers] {' and '.join(missing)} missing; install them (needs root)")
    say(f"installing Debian's {' '.join(missing)}")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"},
    )


def answers() -> bool:
    result = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True
    )
    return result.returncode == 0


def start() -> bool:
    """Make an engine answer; True when it is ours (so the caller stops it afterwards): one
    this call started, or one a killed run started here and left behind."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    pid = running_pid(FOLDER / "pid", MARKER)
    if pid is None and answers():
        return False  # someone else's engine: use it, leave it running
    install()
    if pid is None:
        pid = spawn(dockerd_command(), FOLDER, "dockerd.log")
        say(f"started dockerd (no bridge, no iptables), pid {pid}, log {FOLDER / 'dockerd.log'}")
    deadline = time.monotonic() + READY_DEADLINE_S
    while not answers():
        if time.monotonic() > deadline or running_pid(FOLDER / "pid", MARKER) is None:
            tail = (FOLDER / "dockerd.log").read_text(errors="replace").splitlines()[-30:]
            print("\n".join(tail), flush=True)
            sys.exit(f"[containers] dockerd did not answer within {READY_DEADLINE_S:.0f} s")
        time.sleep(0.5)
    return True


def stop() -> None:
    stop_pid_file(FOLDER, MARKER, "dockerd")


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "start":
        start()
    elif command == "stop":
        stop()
    elif command == "status":
        return 0 if answers() else 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
