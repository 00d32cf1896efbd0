"""The broker and MySQL of docker-compose.yml (`redpanda`, `mysql`), when Docker answers."""

from __future__ import annotations

import shutil
import subprocess

from ops import kafka_broker, mysql_server
from ops.processes import ROOT, say, wait_until


def engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def up() -> None:
    say("Docker engine found: docker compose up -d redpanda mysql")
    subprocess.run(
        ["docker", "compose", "up", "-d", "--wait", "redpanda", "mysql"], check=True, cwd=ROOT
    )
    wait_until(kafka_broker.ready, "Kafka (compose)", None, None)
    wait_until(mysql_server.ready, "MySQL (compose)", None, None)
