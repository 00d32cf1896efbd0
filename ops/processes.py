"""The processes ops/services.py starts here: each in its folder under .run/ with its log and
PID file, found again by PID file and command line, stopped by PID, waited for until ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
READY_DEADLINE_S = 120.0


def port_open(address: str) -> bool:
    """Whether something accepts connections at host:port."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=1):
            return True
    except OSError:
        return False


def say(message: str) -> None:
    print(f"[services] {message}", flush=True)


def wait_until(check: Callable[[], bool], what: str, log: Path | None, pid: int | None) -> None:
    """Return once `check()` holds; exit 1 with the log's tail if it never does, or `pid` dies."""
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        if pid is not None and not pid_alive(pid):
            break
        time.sleep(0.5)
    say(f"{what} did not become ready within {READY_DEADLINE_S:.0f} s")
    if log is not None and log.exists():
        say(f"last lines of {log}:")
        print("\n".join(log.read_text(errors="replace").splitlines()[-40:]), flush=True)
    sys.exit(1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The PID in `pid_file` if that process is alive and is ours (cmdline has `marker`)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    if pid_alive(pid) and marker in cmdline:
        return pid
    return None


def spawn(command: list[str], folder: Path, log_name: str) -> int:
    log = (folder / log_name).open("ab")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True
    )
    (folder / "pid").write_text(str(process.pid))
    return process.pid


def stop_pid_file(folder: Path, marker: str, what: str) -> None:
    pid = running_pid(folder / "pid", marker)
    if pid is None:
        (folder / "pid").unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        say(f"{what} (pid {pid}) ignored SIGTERM for 60 s, sending SIGKILL")
        os.kill(pid, signal.SIGKILL)
    (folder / "pid").unlink(missing_ok=True)
    say(f"stopped {what} (pid {pid})")
