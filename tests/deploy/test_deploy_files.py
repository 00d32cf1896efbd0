"""Offline checks of the deployment files; no AWS account, network or Docker engine needed.

- deploy/ecs/*.json against the ECS API's own request shapes (botocore's service model:
  RegisterTaskDefinition for task definitions, CreateService for services), plus what the
  shapes can't say: secrets only from Secrets Manager, Fargate/awsvpc/awslogs, health checks
  on /healthz, and every variable a real setting of the service it configures;
- docker-compose.yml parsed as YAML (services, profiles, health checks, start-up order,
  volumes) and, where the docker client with its compose plugin is installed,
  `docker compose config -q`;
- the Dockerfile, .dockerignore, .env.example, the Makefile targets and the monitoring files.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.model import Shape
from botocore.validate import ParamValidator
from dotenv import dotenv_values
from prometheus_client.core import REGISTRY

import consumer.metrics
import producer.metrics
from producer.settings import ProducerSettings
from shared.observability import serve
from shared.settings import CommonSettings, ConsumerSettings

ROOT = Path(__file__).resolve().parents[2]
ECS = ROOT / "deploy" / "ecs"
MONITORING = ROOT / "deploy" / "monitoring"

TASKS: dict[str, type[CommonSettings]] = {
    "producer-task.json": ProducerSettings,
    "consumer-task.json": ConsumerSettings,
    "backfill-task.json": ConsumerSettings,
}
SERVICES = {
    "producer-service.json": "producer-task.json",
    "consumer-service.json": "consumer-task.json",
}
SECRET_NAMES = {
    "MYSQL_PASSWORD",
    "COINBASE_API_KEY",
    "COINBASE_API_SECRET",
    "COINBASE_API_PASSPHRASE",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
}
SECRETS_OF_TASK = {
    "producer-task.json": {
        "COINBASE_API_KEY",
        "COINBASE_API_SECRET",
        "COINBASE_API_PASSPHRASE",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
    },
    "consumer-task.json": {"MYSQL_PASSWORD", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"},
    "backfill-task.json": {"MYSQL_PASSWORD", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"},
}
METRICS_PORT = {"producer-task.json": 9101, "consumer-task.json": 9102}
ALL_SETTINGS: tuple[type[CommonSettings], ...] = (
    CommonSettings,
    ProducerSettings,
    ConsumerSettings,
)
# Variables read outside shared/settings.py: ops/services.py and the tests (admin account),
# docker-compose.yml, the Makefile.
OPS_VARIABLES = {
    "MYSQL_ADMIN_USER",
    "MYSQL_ADMIN_PASSWORD",
    "BIND_ADDRESS",
    "SIMULATOR_RATE",
    "GRAFANA_ADMIN_PASSWORD",
    "REGISTRY",
    "TAG",
}


def load_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict), f"{path.name}: not a JSON object"
    return data


def container(task: dict[str, Any]) -> dict[str, Any]:
    definitions = task["containerDefinitions"]
    assert len(definitions) == 1, "one container per task"
    item = definitions[0]
    assert isinstance(item, dict)
    return item


def environment(item: dict[str, Any]) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in item.get("environment", [])}


@functools.cache
def ecs_input_shape(operation: str) -> Shape:
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model(operation).input_shape
    assert shape is not None
    return shape


def shape_errors(params: dict[str, Any], operation: str) -> str:
    report = ParamValidator().validate(params, ecs_input_shape(operation))
    return str(report.generate_report()) if report.has_errors() else ""


def settings_fields(settings_class: type[CommonSettings]) -> set[str]:
    return {name.upper() for name in settings_class.model_fields}


def check_settings(settings_class: type[CommonSettings], values: dict[str, str]) -> None:
    """The values are real variables of `settings_class` and pass its validation."""
    unknown = set(values) - settings_fields(settings_class)
    assert not unknown, f"not settings of {settings_class.__name__}: {sorted(unknown)}"
    # model_validate, not the constructor: only these values, nothing from the environment.
    settings_class.model_validate({name.lower(): value for name, value in values.items()})


# ---------------------------------------------------------------- ECS: request shapes


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_definition_matches_register_task_definition(name: str) -> None:
    errors = shape_errors(load_json(ECS / name), "RegisterTaskDefinition")
    assert not errors, f"{name}:\n{errors}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_definition_matches_create_service(name: str) -> None:
    errors = shape_errors(load_json(ECS / name), "CreateService")
    assert not errors, f"{name}:\n{errors}"


def test_the_shape_check_catches_mistakes() -> None:
    broken = load_json(ECS / "consumer-task.json")
    container(broken)["stopTimeout"] = "60"  # a string where the API wants an integer
    container(broken)["healthcheck"] = {}  # misspelt key
    del broken["family"]  # required
    errors = shape_errors(broken, "RegisterTaskDefinition")
    assert "stopTimeout" in errors
    assert "healthcheck" in errors
    assert "family" in errors


def test_every_ecs_file_is_checked() -> None:
    assert {path.name for path in ECS.glob("*.json")} == set(TASKS) | set(SERVICES)


# ---------------------------------------------------------------- ECS: what the shapes can't say


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_runs_on_fargate_with_awslogs(name: str) -> None:
    task = load_json(ECS / name)
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert task["networkMode"] == "awsvpc"
    assert task["executionRoleArn"].startswith("arn:aws:iam::")
    # Fargate takes cpu/memory as strings from its table of sizes.
    assert task["cpu"] in {"256", "512", "1024", "2048", "4096"}
    assert int(task["memory"]) >= 512
    item = container(task)
    assert item["essential"] is True
    assert item["user"].split(":")[0] not in {"0", "root"}, "non-root"
    assert item["readonlyRootFilesystem"] is True
    assert 2 <= item["stopTimeout"] <= 120, "Fargate allows 2..120 s"
    logs = item["logConfiguration"]
    assert logs["logDriver"] == "awslogs"
    assert {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} <= set(logs["options"])
    assert item["command"][:3] == ["python", "-m", item["name"].replace("backfill", "consumer")]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_secrets_come_from_secrets_manager_only(name: str) -> None:
    item = container(load_json(ECS / name))
    secrets = {entry["name"]: entry["valueFrom"] for entry in item["secrets"]}
    assert set(secrets) == SECRETS_OF_TASK[name]
    for secret, arn in secrets.items():
        assert arn.startswith("arn:aws:secretsmanager:"), f"{secret}: {arn}"
    plain = environment(item)
    assert not set(plain) & SECRET_NAMES, "a secret is a plain environment value"
    assert not [
        key
        for key in plain
        if re.search("PASSWORD|SECRET|PASSPHRASE|API_KEY|USER", key) and key != "MYSQL_USER"
    ], "something secret-looking is a plain environment value"


def test_all_six_secrets_are_wired() -> None:
    wired = set().union(*SECRETS_OF_TASK.values())
    assert wired == SECRET_NAMES


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_variables_are_real_settings(name: str) -> None:
    item = container(load_json(ECS / name))
    values = environment(item) | {entry["name"]: "placeholder" for entry in item["secrets"]}
    check_settings(TASKS[name], values)


@pytest.mark.parametrize("name", sorted(METRICS_PORT))
def test_health_check_calls_healthz_with_python(name: str) -> None:
    item = container(load_json(ECS / name))
    port = METRICS_PORT[name]
    command = item["healthCheck"]["command"]
    assert command[:3] == ["CMD", "python", "-c"], "the images have python, not curl"
    assert f"127.0.0.1:{port}/healthz" in command[3]
    assert environment(item)[f"{item['name'].upper()}_METRICS_PORT"] == str(port)
    assert [mapping["containerPort"] for mapping in item["portMappings"]] == [port]
    assert item["healthCheck"]["startPeriod"] >= 30
    # The same code, run here against a real /healthz on a free port: 200 passes, 503 fails.
    snippet = command[3].replace(f":{port}/", ":{port}/")  # a {port} placeholder to fill
    assert health_snippet_exit_code(snippet, healthy=True) == 0
    assert health_snippet_exit_code(snippet, healthy=False) != 0


def test_backfill_task_runs_the_backfill_command() -> None:
    item = container(load_json(ECS / "backfill-task.json"))
    assert item["command"] == ["python", "-m", "consumer", "backfill", "--since", "earliest"]
    assert "healthCheck" not in item, "a one-off task has no /healthz"
    assert "portMappings" not in item
    consumer_task = container(load_json(ECS / "consumer-task.json"))
    assert item["image"] == consumer_task["image"]
    same = {"PRODUCTS", "KAFKA_TOPIC", "KAFKA_GROUP_ID", "MYSQL_HOST", "MYSQL_DATABASE"}
    backfill_env, consumer_env = environment(item), environment(consumer_task)
    assert {k: backfill_env[k] for k in same} == {k: consumer_env[k] for k in same}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_services_are_separate_single_fargate_tasks(name: str) -> None:
    service = load_json(ECS / name)
    assert service["taskDefinition"] == load_json(ECS / SERVICES[name])["family"]
    assert service["launchType"] == "FARGATE"
    assert service["desiredCount"] == 1
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    assert network["subnets"] and network["securityGroups"]
    assert network["assignPublicIp"] == "DISABLED"
    breaker = service["deploymentConfiguration"]["deploymentCircuitBreaker"]
    assert breaker == {"enable": True, "rollback": True}


def test_two_consumers_never_run_at_once() -> None:
    deployment = load_json(ECS / "consumer-service.json")["deploymentConfiguration"]
    assert deployment["maximumPercent"] == 100
    assert deployment["minimumHealthyPercent"] == 0


def test_producer_deploys_overlap_instead_of_leaving_a_gap() -> None:
    # Two producers for a moment only duplicate frames, which the table's key drops; a gap
    # loses ticks the live feed can't send again.
    deployment = load_json(ECS / "producer-service.json")["deploymentConfiguration"]
    assert deployment["maximumPercent"] == 200
    assert deployment["minimumHealthyPercent"] == 100


def test_services_and_tasks_have_distinct_names() -> None:
    families = [load_json(ECS / name)["family"] for name in TASKS]
    services = [load_json(ECS / name)["serviceName"] for name in SERVICES]
    assert len(set(families)) == len(families)
    assert len(set(services)) == len(services)


# ---------------------------------------------------------------- health-check snippets, for real


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        assert isinstance(port, int)
        return port


def health_snippet_exit_code(snippet: str, healthy: bool, env_name: str | None = None) -> int:
    """Run `snippet` (with {port} to fill, or reading env_name) against a real /healthz."""
    port = free_port()
    server = serve(port, lambda: (healthy, {}), setting="TEST_PORT", host="127.0.0.1")
    assert isinstance(server, ThreadingHTTPServer)
    try:
        code = snippet if env_name else snippet.replace("{port}", str(port))
        env = {env_name: str(port)} if env_name else {}
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, timeout=30
        ).returncode
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- docker-compose.yml


@functools.cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def compose_service(name: str) -> dict[str, Any]:
    service = compose()["services"][name]
    assert isinstance(service, dict)
    return service


def test_compose_services_and_profiles() -> None:
    profiles = {
        name: tuple(service.get("profiles", ())) for name, service in compose()["services"].items()
    }
    assert profiles == {
        "redpanda": (),
        "console": (),
        "mysql": (),
        "topics": (),
        "producer": (),
        "consumer": (),
        "simulator": ("demo",),
        "prometheus": ("monitoring",),
        "grafana": ("monitoring",),
    }


def test_compose_broker_listens_inside_and_outside() -> None:
    redpanda = compose_service("redpanda")
    command = " ".join(redpanda["command"])
    assert "--mode=dev-container" in command
    assert "--smp=1" in command
    assert "--kafka-addr=internal://0.0.0.0:29092,external://0.0.0.0:9092" in command
    assert "--advertise-kafka-addr=internal://redpanda:29092,external://localhost:9092" in command
    assert any(str(port).endswith(":9092:9092") for port in redpanda["ports"])
    assert any(str(port).endswith(":3306:3306") for port in compose_service("mysql")["ports"])


def test_compose_mysql_applies_schema_on_first_start() -> None:
    mysql = compose_service("mysql")
    assert mysql["image"].startswith("mysql:8.4")
    assert "./schema.sql:/docker-entrypoint-initdb.d/01-schema.sql:ro" in mysql["volumes"]
    assert "mysql-data:/var/lib/mysql" in mysql["volumes"]
    assert "coinbase.`order`" in " ".join(mysql["healthcheck"]["test"])


def test_driver_can_log_in_to_mysql_8_accounts() -> None:
    # MySQL 8.4's caching_sha2_password needs `cryptography` (PyMySQL[rsa]) without TLS.
    assert importlib.util.find_spec("cryptography") is not None


def test_compose_health_checks_gate_start_up() -> None:
    for name in ("redpanda", "mysql", "simulator", "prometheus", "grafana"):
        assert "test" in compose_service(name)["healthcheck"], name
    expected = {
        "console": {"redpanda": "service_healthy"},
        "topics": {"redpanda": "service_healthy"},
        "producer": {"topics": "service_completed_successfully", "simulator": "service_healthy"},
        "consumer": {"topics": "service_completed_successfully", "mysql": "service_healthy"},
        "grafana": {"prometheus": "service_healthy", "mysql": "service_healthy"},
    }
    for name, conditions in expected.items():
        depends = compose_service(name)["depends_on"]
        assert {dep: spec["condition"] for dep, spec in depends.items()} == conditions, name
    # The simulator exists only in the demo profile: the producer must not require it.
    assert compose_service("producer")["depends_on"]["simulator"]["required"] is False


def test_compose_restarts_and_one_shot_job() -> None:
    for name, service in compose()["services"].items():
        expected = "no" if name == "topics" else "unless-stopped"
        assert service.get("restart") == expected, name
    assert compose_service("topics")["command"] == ["python", "-m", "shared.topics", "ensure"]


def test_compose_named_volumes_keep_data() -> None:
    volumes = set(compose()["volumes"])
    assert {"redpanda-data", "mysql-data"} <= volumes
    assert "redpanda-data:/var/lib/redpanda/data" in compose_service("redpanda")["volumes"]
    used = {
        str(mount).split(":")[0]
        for service in compose()["services"].values()
        for mount in service.get("volumes", [])
    }
    assert volumes <= used, "a declared volume is mounted nowhere"


def test_compose_bind_mounts_and_build_targets_exist() -> None:
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile(), re.MULTILINE))
    for name, service in compose()["services"].items():
        for mount in service.get("volumes", []):
            source = str(mount).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
        if "build" in service:
            assert service["build"]["target"] in targets, name


def test_compose_app_services_read_real_settings() -> None:
    app: dict[str, type[CommonSettings]] = {
        "topics": CommonSettings,
        "producer": ProducerSettings,
        "consumer": ConsumerSettings,
    }
    for name, settings_class in app.items():
        service = compose_service(name)
        assert service["env_file"] == [{"path": ".env", "required": False}], name
        values = {
            key: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
            for key, value in service["environment"].items()
        }
        check_settings(settings_class, values)
    assert compose_service("consumer")["environment"]["MYSQL_HOST"] == "mysql"
    for name in app:
        env = compose_service(name)["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "redpanda:29092", name


def test_compose_variables_are_documented() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", text))
    documented = set(dotenv_names())
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"


def docker_compose_usable() -> str | None:
    """None when `docker compose` runs here, else why not."""
    if shutil.which("docker") is None:
        return "the docker client is not installed"
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "the docker client has no compose plugin (`docker compose version` failed)"
    return None


@pytest.mark.parametrize(
    "profiles",
    [(), ("demo",), ("monitoring",), ("demo", "monitoring")],
    ids=["default", "demo", "monitoring", "demo+monitoring"],
)
def test_docker_compose_config_validates(profiles: tuple[str, ...]) -> None:
    reason = docker_compose_usable()
    if reason:
        pytest.skip(reason)
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    result = subprocess.run(
        ["docker", "compose", *flags, "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_demo_points_the_producer_at_the_simulator() -> None:
    reason = docker_compose_usable()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        ["docker", "compose", "--profile", "demo", "config", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env() | {"COINBASE_WS_URL": "ws://simulator:8765"},
    )
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert resolved["services"]["producer"]["environment"]["COINBASE_WS_URL"] == (
        "ws://simulator:8765"
    )
    assert "simulator" in resolved["services"]


def clean_env() -> dict[str, str]:
    """This process's environment without the variables compose would interpolate."""
    return {key: value for key, value in os.environ.items() if key not in dotenv_names()}


# ---------------------------------------------------------------- Dockerfile and .dockerignore


@functools.cache
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


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


@pytest.mark.parametrize("service", ["producer", "consumer"])
def test_dockerfile_exec_form_command_and_health_check(service: str) -> None:
    body = stage(service)
    commands = [
        json.loads(line[len("CMD ") :]) for line in body.splitlines() if line.startswith("CMD ")
    ]
    assert commands == [["python", "-m", service]], "exec form: SIGTERM reaches Python"
    health = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", re.sub(r"\\\n\s*", "", body), re.M)
    assert health, "no HEALTHCHECK"
    check = json.loads(health.group(1))
    assert check[:2] == ["python", "-c"] and "/healthz" in check[2]
    env_name = f"{service.upper()}_METRICS_PORT"
    assert health_snippet_exit_code(check[2], healthy=True, env_name=env_name) == 0
    assert health_snippet_exit_code(check[2], healthy=False, env_name=env_name) != 0


def test_dockerfile_bakes_in_no_secrets() -> None:
    for keyword in ("ENV", "ARG"):
        for line in instructions(keyword):
            assert not re.search("PASSWORD|SECRET|PASSPHRASE|API_KEY|TOKEN", line), line


def test_image_installs_the_runtime_lock_only() -> None:
    """The image gets [project].dependencies from their own hashed lock, no test tools."""
    assert "--require-hashes --no-deps -r requirements-runtime.lock" in dockerfile()
    kept = (ROOT / "requirements-runtime.lock").read_text()
    names = set(re.findall(r"^([a-z0-9][a-z0-9._-]*)==", kept, re.M))
    for runtime in ("confluent-kafka", "pydantic", "pydantic-core", "pymysql", "websockets"):
        assert runtime in names
    for dev in ("pytest", "mypy", "ruff", "hypothesis", "botocore"):
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


# ---------------------------------------------------------------- .env.example


@functools.cache
def dotenv_names() -> tuple[str, ...]:
    """Every variable .env.example names, set or commented out."""
    text = (ROOT / ".env.example").read_text()
    return tuple(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.M))


def test_env_example_lists_every_variable_once() -> None:
    names = dotenv_names()
    assert len(names) == len(set(names)), "a variable is listed twice"
    every = set().union(*(settings_fields(cls) for cls in ALL_SETTINGS)) | OPS_VARIABLES
    assert set(names) == every


def test_env_example_lines_have_a_comment() -> None:
    variable = re.compile(r"^#? ?[A-Z][A-Z0-9_]*=")
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if variable.match(line):
            above = lines[index - 1]
            assert above.startswith("# ") and not variable.match(above), f"no comment: {line}"


def test_env_example_values_are_valid_defaults() -> None:
    values = {
        key: value
        for key, value in dotenv_values(ROOT / ".env.example").items()
        if value is not None
    }
    for settings_class in ALL_SETTINGS:
        fields = settings_fields(settings_class)
        check_settings(settings_class, {k: v for k, v in values.items() if k in fields})
        defaults = settings_class.model_validate({})
        for key, value in values.items():
            if key in fields and key != "MYSQL_PASSWORD":  # schema.sql's local password
                default = getattr(defaults, key.lower())
                shown = ",".join(default) if isinstance(default, tuple) else str(default)
                assert value == shown, f"{key}={value}, default {shown}"


# ---------------------------------------------------------------- Makefile


def test_makefile_image_targets() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "build-producer",
            "build-consumer",
            "push",
            "compose-config",
            "REGISTRY=registry.example/cp",
            "TAG=t1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [
        "docker build --target producer -t registry.example/cp/producer:t1 .",
        "docker build --target consumer -t registry.example/cp/consumer:t1 .",
        "docker push registry.example/cp/producer:t1",
        "docker push registry.example/cp/consumer:t1",
        "docker compose --profile demo --profile monitoring config -q",
    ]


# ---------------------------------------------------------------- monitoring


def exported_metric_names() -> set[str]:
    """Sample names the two services export (their modules are imported above)."""
    assert producer.metrics and consumer.metrics
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum"),
    }
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in suffixes.get(family.type, ())
    }


@functools.cache
def dashboard() -> dict[str, Any]:
    return load_json(MONITORING / "grafana" / "dashboards" / "coinbase-pipeline.json")


def panels() -> Iterator[dict[str, Any]]:
    yield from dashboard()["panels"]


def test_prometheus_scrapes_both_services() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {"producer": ["producer:9101"], "consumer": ["consumer:9102"]}


def test_dashboard_has_the_panels() -> None:
    exprs = {
        panel["title"]: " ".join(t.get("expr", t.get("rawSql", "")) for t in panel["targets"])
        for panel in panels()
    }
    wanted = {
        "Ticks per second per instrument": [
            "consumer_rows_written_total",
            "producer_ticks_published_total",
        ],
        "End-to-end latency": ["histogram_quantile", "consumer_end_to_end_seconds_bucket"],
        "Consumer lag": ["consumer_lag_records"],
        "Dead letters": ["producer_dead_letters_total", "consumer_dead_letters_total"],
        "Feed reconnects": ["producer_reconnects_total"],
        "Last price per instrument": ["`order`", "price", "product_id"],
    }
    for title, needles in wanted.items():
        found = [text for name, text in exprs.items() if name.startswith(title)]
        assert found, f"no panel {title!r}"
        for needle in needles:
            assert needle in found[0], f"{title}: {needle}"


def test_dashboard_queries_only_exported_metrics() -> None:
    exported = exported_metric_names()
    for panel in panels():
        for target in panel["targets"]:
            for name in re.findall(r"\b((?:producer|consumer)_[a-z0-9_]+)", target.get("expr", "")):
                assert name in exported, f"{panel['title']}: {name} is not exported"


def test_dashboard_data_sources_are_provisioned() -> None:
    provisioned = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text()
    )
    uids = {source["uid"]: source["type"] for source in provisioned["datasources"]}
    for panel in panels():
        for target in (panel, *panel["targets"]):
            source = target["datasource"]
            assert uids.get(source["uid"]) == source["type"], panel["title"]
    providers = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    mounted = {
        str(mount).split(":")[1]
        for mount in compose_service("grafana")["volumes"]
        if str(mount).startswith("./")
    }
    for provider in providers["providers"]:
        assert provider["options"]["path"] in mounted
