"""The Dockerfile and .dockerignore: targets, non-root user, SIGTERM, health checks, no secrets."""

from __future__ import annotations

import json
import re

import pytest

from tests.deploy.contract import ROOT, dockerfile, dockerfile_targets
from tests.deploy.health import snippet_exit_code

# Each image's health-check port variable; analysis's target comes with its own branch, so
# its checks run once the target exists.
PORT_VARIABLE = {
    "producer": "PRODUCER_METRICS_PORT",
    "consumer": "CONSUMER_METRICS_PORT",
    "analysis": "ANALYSIS_PORT",
    "repair": "REPAIR_METRICS_PORT",
}


def instructions(keyword: str) -> list[str]:
    """Arguments of every `keyword` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile())
    return [
        line[len(keyword) + 1 :].strip()
        for line in joined.splitlines()
        if line.startswith(keyword + " ")
    ]


def stage(name: str) -> str:
    match = re.search(rf"^FROM \S+ AS {name}$(.*?)(?=^FROM |\Z)", dockerfile(), re.M | re.S)
    assert match, f"no stage {name}"
    return match.group(1)


def test_dockerfile_targets_and_base_image() -> None:
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile()
    froms = instructions("FROM")
    assert {line.split(" AS ")[1] for line in froms} >= {"base", "producer", "consumer"}
    assert "--require-hashes" in dockerfile()
    for path in ("shared/", "producer/", "consumer/", "simulator/"):
        assert f"COPY {path} {path}" in dockerfile()
    assert any("schema.sql" in line for line in instructions("COPY"))


def test_dockerfile_runs_as_non_root_with_sigterm() -> None:
    users = instructions("USER")
    assert users and all(user.split(":")[0] not in {"0", "root"} for user in users)
    assert instructions("STOPSIGNAL") == ["SIGTERM"]


def test_dockerfile_has_the_service_targets() -> None:
    assert {"base", "producer", "consumer"} <= dockerfile_targets()


@pytest.mark.parametrize("service", sorted(set(PORT_VARIABLE) & dockerfile_targets()))
def test_dockerfile_exec_form_command_and_health_check(service: str) -> None:
    body = stage(service)
    commands = [
        json.loads(line[len("CMD ") :]) for line in body.splitlines() if line.startswith("CMD ")
    ]
    # Repair's image runs the long-lived mode; one-shot runs override the command.
    arguments = ["--follow"] if service == "repair" else []
    assert commands == [["python", "-m", service, *arguments]], "exec form: SIGTERM reaches Python"
    health = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", re.sub(r"\\\n\s*", "", body), re.M)
    assert health, "no HEALTHCHECK"
    check = json.loads(health.group(1))
    assert check[:2] == ["python", "-c"] and "/healthz" in check[2]
    env_name = PORT_VARIABLE[service]
    assert snippet_exit_code(check[2], healthy=True, env_name=env_name) == 0
    assert snippet_exit_code(check[2], healthy=False, env_name=env_name) != 0


def test_dockerfile_bakes_in_no_secrets() -> None:
    for keyword in ("ENV", "ARG"):
        for line in instructions(keyword):
            assert not re.search("PASSWORD|SECRET|PASSPHRASE|API_KEY|TOKEN", line), line


@pytest.mark.parametrize("extra", ["producer", "consumer", "analysis", "repair", "tools"])
def test_each_image_installs_its_own_lock_only(extra: str) -> None:
    """Each image gets its extra's hashed lock, pinned as the tests run it, no test tools."""
    assert f"--require-hashes --no-deps -r requirements-{extra}.lock" in dockerfile()
    kept = (ROOT / f"requirements-{extra}.lock").read_text()
    names = set(re.findall(r"^([a-z0-9][a-z0-9._-]*)==", kept, re.M))
    for common in ("pydantic", "pydantic-core", "structlog", "orjson", "prometheus-client"):
        assert common in names
    for dev in ("pytest", "mypy", "ruff", "hypothesis", "botocore", "pyyaml", "watchfiles"):
        assert dev not in names
    full = (ROOT / "requirements.lock").read_text()
    for block in re.split(r"\n(?=[a-z])", kept.strip()):
        pin = block.split()[0]
        assert "--hash=sha256:" in block and pin in full, f"{pin} differs from requirements.lock"


def test_dockerignore_lets_in_only_what_the_image_needs() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: .env, .venv, .git and the like stay out"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        part.rstrip("/")
        for line in instructions("COPY")
        if not line.startswith("--from")
        for part in line.split()[:-1]
    }
    assert copied <= allowed
    assert not {".env", ".venv", ".git", ".run"} & allowed
