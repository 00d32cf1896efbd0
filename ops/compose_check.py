"""The compose stack under `make test-containers`: docker-compose.yml with the check's
override (ops/compose-check.yml) in a project of its own, its environment (throwaway names,
free ports), and waiting for its containers."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pymysql

from ops.docker_engine import say
from ops.pipeline import Pipeline, free_port
from ops.processes import ROOT

PROJECT = "coinbase-pipeline-check"
TAG = "check"
OVERRIDE = ROOT / "ops" / "compose-check.yml"
PROFILES: tuple[tuple[str, ...], ...] = (
    (),
    ("demo",),
    ("monitoring",),
    ("per-instrument",),
    ("demo", "monitoring", "per-instrument"),
)
DEMO = ("simulator", "topics", "producer", "consumer", "analysis", "repair")
PER_INSTRUMENT = {
    "consumer-eth-btc": "ETH-BTC",
    "consumer-btc-usd": "BTC-USD",
    "consumer-btc-eur": "BTC-EUR",
}
HEALTHY_WITHIN_S = 60.0
LOGS = ROOT / ".run" / "containers" / "compose.log"


class CheckFailed(Exception):
    """One expectation of the check not met; the message says which."""


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, every_s: float = 0.5) -> None:
    """Until `check()`; MariaDB restarting meanwhile (a drill on a shared machine) counts as
    not yet."""
    deadline = time.monotonic() + timeout_s
    while not answered(check):
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {timeout_s:g} s")
        time.sleep(every_s)


def answered(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except pymysql.MySQLError:
        return False


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, cwd=ROOT)
    if check and result.returncode != 0:
        raise CheckFailed(f"docker {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


class Compose:
    """`docker compose` of docker-compose.yml plus the check's override, in its own project."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, parallel: int = -1, quiet: bool = True) -> str:
        command = ["docker", "compose", "-p", PROJECT, "-f", "docker-compose.yml"]
        command += ["-f", str(OVERRIDE), "--parallel", str(parallel)]
        command += ["--profile", "demo", "--profile", "per-instrument"]
        result = subprocess.run(
            [*command, *args], cwd=ROOT, env=self.env, capture_output=quiet, text=True
        )
        if result.returncode != 0:
            detail = (result.stderr or "").strip()[-3000:]
            raise CheckFailed(f"docker compose {' '.join(args)} failed:\n{detail}")
        return result.stdout or ""

    def container(self, service: str) -> str:
        ids = self("ps", "-a", "-q", service).split()
        if len(ids) != 1:
            raise CheckFailed(f"{service}: {len(ids)} containers, expected one")
        return ids[0]

    def state(self, service: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(docker("inspect", self.container(service)))[0]
        return found


def compose_env(pipeline: Pipeline, python_image: str) -> dict[str, str]:
    """What the compose file and the override interpolate: throwaway names, free ports."""
    services = pipeline.services
    values = {
        "PYTHON_IMAGE": python_image,
        "TAG": TAG,
        "REGISTRY": "coinbase-pipeline",
        "PRODUCTS": ",".join(pipeline.products),
        "KAFKA_BOOTSTRAP_SERVERS": services.bootstrap,
        "KAFKA_PORT": services.bootstrap.split(",")[0].rpartition(":")[2],
        "KAFKA_TOPIC": pipeline.topic,
        "KAFKA_DLQ_TOPIC": pipeline.dlq_topic,
        "KAFKA_TRADES_TOPIC": pipeline.trades_topic,
        "KAFKA_GROUP_ID": pipeline.group_id,
        "MYSQL_PORT": str(services.mysql_port),
        "MYSQL_DATABASE": pipeline.database,
        "MYSQL_USER": "ticker_writer",
        "MYSQL_PASSWORD": "ticker_writer",
        "LOG_FORMAT": "json",
    }
    for name in (
        "SIMULATOR_PORT",
        "PRODUCER_METRICS_PORT",
        "CONSUMER_METRICS_PORT",
        "ANALYSIS_PORT",
        "REPAIR_METRICS_PORT",
        "ETH_BTC_METRICS_PORT",
        "BTC_USD_METRICS_PORT",
        "BTC_EUR_METRICS_PORT",
    ):
        values[name] = str(free_port())
    # The check's own values win over a developer's .env and shell.
    return {key: value for key, value in os.environ.items() if key not in values} | values


def up_healthy(compose: Compose, services: list[str]) -> None:
    """`up -d` the services; every container healthy (one-shot ones: exited 0) within
    HEALTHY_WITHIN_S of the command, which itself waits for what they depend on."""
    started = time.monotonic()
    compose("up", "-d", *services)
    wait_healthy(compose, services, HEALTHY_WITHIN_S - (time.monotonic() - started))


def wait_healthy(compose: Compose, services: tuple[str, ...] | list[str], within_s: float) -> None:
    """Every service's container healthy (one-shot ones: exited 0) within `within_s`."""

    def all_healthy() -> bool:
        for service in services:
            state = compose.state(service)["State"]
            if "Health" not in state:  # the topics job
                if state["Status"] == "exited" and state["ExitCode"] != 0:
                    raise CheckFailed(f"{service} exited with {state['ExitCode']}")
                if state["Status"] != "exited":
                    return False
            elif state["Health"]["Status"] != "healthy":
                if state["Status"] != "running":
                    raise CheckFailed(f"{service} is {state['Status']} ({state['ExitCode']})")
                return False
        return True

    wait_for(f"healthy: {', '.join(services)}", all_healthy, within_s, every_s=1)


def expect_exit_zero(compose: Compose, services: list[str]) -> None:
    for service in services:
        state = compose.state(service)["State"]
        if state["Status"] != "exited" or state["ExitCode"] != 0:
            logs = docker("logs", "--tail", "5", compose.container(service), check=False)
            code = state["ExitCode"]
            raise CheckFailed(f"{service}: {state['Status']}, exit code {code}\n{logs}")


def save_logs(compose: Compose) -> None:
    """Every container's output, kept for a post-mortem (the containers go with `down`)."""
    LOGS.parent.mkdir(parents=True, exist_ok=True)
    LOGS.write_text(compose("logs", "--no-color", "--timestamps"))
    say(f"   containers' logs in {LOGS}")
