"""Docker Compose v2+ as the docker CLI plugin, built once from its Go module and cached.

Debian's docker-compose is v1, too old for docker-compose.yml (`env_file: {path, required}`,
`depends_on: {required: false}`). Compose is a Go module: its source comes from the Go module
proxy (`go mod download`), and `./cmd` is built from a writable copy, since `go install`
refuses a module whose go.mod has `exclude` directives. The binary is cached under
~/.cache/coinbase-pipeline/ and copied to ~/.docker/cli-plugins/docker-compose.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ops.docker_engine import say

MODULE = "github.com/docker/compose/v5"
VERSION = "v5.6.0"
# The module's hash as the checksum database records it (`go mod download -json` reports it):
# the source built here is the one everyone else gets.
SUM = "h1:WCDEV0D1CtZLyPdklHdEjFBnCStosBYkfsD3tvM/ITU="
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "coinbase-pipeline"
BINARY = CACHE_ROOT / f"docker-compose-{VERSION}" / "docker-compose"
PLUGIN = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins"


def go_env() -> dict[str, str]:
    """Go's module and build caches beside the binary; a newer toolchain, should go.mod ask
    for one, comes from the module proxy too (GOTOOLCHAIN=auto)."""
    go_cache = CACHE_ROOT / "go"
    return os.environ | {
        "GOMODCACHE": str(go_cache / "mod"),
        "GOCACHE": str(go_cache / "build"),
        "GOFLAGS": "-modcacherw",
        "GOTOOLCHAIN": "auto",
        "CGO_ENABLED": "0",
    }


def installed_version() -> str | None:
    result = subprocess.run(
        ["docker", "compose", "version", "--short"], capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else None


def build() -> None:
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        sys.exit("[containers] Go is missing: it builds the Compose plugin (go 1.21 or later)")
    say(f"building Docker Compose {VERSION} from the Go module {MODULE} (once; a few minutes)")
    env = go_env()
    with tempfile.TemporaryDirectory() as scratch:
        downloaded = subprocess.run(
            [go, "mod", "download", "-json", f"{MODULE}@{VERSION}"],
            cwd=scratch,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        module = json.loads(downloaded.stdout)
        if module.get("Sum") != SUM:
            sys.exit(f"[containers] {MODULE}@{VERSION} hash {module.get('Sum')}, expected {SUM}")
        source = Path(scratch) / "compose"
        shutil.copytree(module["Dir"], source)
        for folder, _, files in os.walk(source):  # the module cache's copy is read-only
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(Path(folder) / name, 0o644)
        BINARY.parent.mkdir(parents=True, exist_ok=True)
        flags = f"-s -w -X {MODULE}/internal.Version={VERSION}"
        subprocess.run(
            [go, "build", "-trimpath", "-ldflags", flags, "-o", str(BINARY) + ".new", "./cmd"],
            cwd=source,
            env=env,
            check=True,
        )
    os.replace(str(BINARY) + ".new", BINARY)  # only a whole binary counts as cached


def recent_enough(version: str) -> bool:
    """Compose 2.24 or later reads `env_file: {path, required}`."""
    try:
        major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (2, 24)


def ensure() -> str:
    """A Compose plugin answers `docker compose version` (one already installed and recent
    enough is used as it is); returns that version."""
    version = installed_version()
    if version is not None and recent_enough(version):
        return version
    if not BINARY.exists():
        build()
    target = PLUGIN / "docker-compose"
    if not target.exists() or target.read_bytes() != BINARY.read_bytes():
        PLUGIN.mkdir(parents=True, exist_ok=True)
        shutil.copy2(BINARY, target)
        target.chmod(0o755)
        say(f"installed the Compose plugin at {target}")
    version = installed_version()
    if version is None:
        sys.exit(f"[containers] `docker compose version` fails with {target}")
    return version
