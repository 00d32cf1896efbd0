"""A stand-in for python:3.11-slim-bookworm, made from Debian's packages (no registry pull).

`debootstrap --variant=minbase` with python3 (3.11 on bookworm), python3-venv,
python-is-python3 and ca-certificates, imported with `docker import` and passed to the
Dockerfile as PYTHON_IMAGE. pip inside the build must trust what pip on the host trusts, so
the host's CA bundle is copied in and PIP_CERT points at it. The root file system is cached as
a tarball under ~/.cache/coinbase-pipeline/ and the .debs in apt's cache; an image already in
the engine with the same inputs is used as it is.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ops.compose_plugin import CACHE_ROOT
from ops.docker_engine import say

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
REPOSITORY = "coinbase-pipeline/python-standin"
CA_IN_IMAGE = "/etc/ssl/certs/host-ca-bundle.crt"
APT_ARCHIVES = Path("/var/cache/apt/archives")


def host_ca_bundle() -> Path:
    """The bundle pip on this host verifies with (PIP_CERT and the like, else Debian's)."""
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return Path("/etc/ssl/certs/ca-certificates.crt")


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this host's apt uses (DEBIAN_MIRROR overrides it)."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    texts = [path.read_text() for path in sorted(sources.glob("sources.list.d/*.sources"))]
    texts += [path.read_text() for path in sources.glob("sources.list") if path.is_file()]
    for text in texts:
        for uri in re.findall(r"^URIs:\s*(\S+)|^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M):
            found = str(uri[0] or uri[1])
            if found.rstrip("/").endswith("/debian"):
                return found
    raise SystemExit("[containers] no Debian mirror in /etc/apt; set DEBIAN_MIRROR")


def tag(ca_bundle: bytes) -> str:
    """The image's tag names its inputs: another CA bundle or package list, another image."""
    digest = hashlib.sha256(repr((SUITE, PACKAGES)).encode() + ca_bundle).hexdigest()[:12]
    return f"{REPOSITORY}:3.11-{SUITE}-{digest}"


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def make_rootfs(tarball: Path, ca_bundle: bytes) -> None:
    """debootstrap a minimal bookworm with Python, add the CA bundle, tar it."""
    say(f"debootstrap {SUITE} minbase with {', '.join(PACKAGES)} (once; about a minute)")
    APT_ARCHIVES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tarball.parent) as scratch:
        root = Path(scratch) / "root"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                f"--cache-dir={APT_ARCHIVES}",
                SUITE,
                str(root),
                debian_mirror(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (root / CA_IN_IMAGE.lstrip("/")).write_bytes(ca_bundle)
        for leftover in ("var/lib/apt/lists", "var/cache/apt/archives", "usr/share/doc"):
            shutil.rmtree(root / leftover, ignore_errors=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball) + ".new", "."],
            check=True,
        )
    os.replace(str(tarball) + ".new", tarball)


def ensure() -> str:
    """The stand-in image is in the engine; returns its name (for PYTHON_IMAGE)."""
    ca_bundle = host_ca_bundle().read_bytes()
    name = tag(ca_bundle)
    if image_exists(name):
        return name
    tarball = CACHE_ROOT / f"python-standin-{name.rsplit('-', 1)[1]}.tar"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    if not tarball.exists():
        make_rootfs(tarball, ca_bundle)
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"ENV PIP_CERT={CA_IN_IMAGE}",
        'CMD ["python3"]',
    ]
    options = [part for change in changes for part in ("--change", change)]
    subprocess.run(
        ["docker", "import", *options, str(tarball), name], check=True, stdout=subprocess.DEVNULL
    )
    say(f"imported the stand-in base image {name}")
    return name
