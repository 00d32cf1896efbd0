"""Prometheus' promtool, from Debian's `prometheus` package, found or installed on demand.

    python ops/promtool.py check config deploy/monitoring/prometheus.yml
    python ops/promtool.py test rules deploy/monitoring/alerts.test.yml

The package is unpacked into a cache folder rather than installed: installing it would add a
system user, 90 MB of dependencies and, where an init system runs, a Prometheus server,
while promtool alone needs nothing but libc. Downloading it needs the package lists (`apt-get
update`, as root) the first time on a machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "prometheus"
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "coinbase-pipeline"
    / "prometheus-deb"
)
UNPACKED = CACHE / "promtool"


def say(message: str) -> None:
    print(f"[promtool] {message}", file=sys.stderr, flush=True)


def promtool() -> str:
    """Path of a promtool: PROMTOOL, one on PATH, or Debian's, unpacked here when missing."""
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if found:
        return found
    if not UNPACKED.exists():
        unpack_debian_package()
    return str(UNPACKED)


def unpack_debian_package() -> None:
    say(f"fetching Debian's {PACKAGE} package for its promtool into {CACHE}")
    with tempfile.TemporaryDirectory() as folder:
        if not _download(Path(folder)):
            if os.geteuid() != 0:
                sys.exit(f"[promtool] cannot fetch {PACKAGE}: run `apt-get update` as root")
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            if not _download(Path(folder)):
                sys.exit(f"[promtool] apt-get download {PACKAGE} failed")
        [deb] = Path(folder).glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), folder], check=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        # Moved in last, so an interrupted unpack never leaves half a binary behind.
        shutil.move(Path(folder) / "usr" / "bin" / "promtool", UNPACKED)
    version = subprocess.run([UNPACKED, "--version"], capture_output=True, text=True).stdout
    say(version.splitlines()[0])


def _download(folder: Path) -> bool:
    result = subprocess.run(
        ["apt-get", "download", "-qq", PACKAGE], cwd=folder, capture_output=True, text=True
    )
    return result.returncode == 0 and any(folder.glob("*.deb"))


def main() -> int:
    return subprocess.run([promtool(), *sys.argv[1:]]).returncode


if __name__ == "__main__":
    sys.exit(main())
