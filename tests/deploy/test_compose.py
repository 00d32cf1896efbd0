"""docker-compose.yml, checked on every machine.

- against the Compose Specification's JSON schema (vendored in compose_spec/, Apache-2.0,
  from the compose-spec repository), with every profile's services resolved as compose
  would (a dependency must exist in each profile combination, unless `required: false`);
- the project's own rules: services and profiles, health-gated start-up, named volumes,
  real settings, the analysis service and one consumer per instrument;
- where the docker client has its compose plugin, also `docker compose config` (an extra:
  it skips on machines without one, the schema check above does not).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ops.pipeline import PRODUCTS
from tests.deploy.contract import (
    ROOT,
    check_settings,
    compose,
    compose_service,
    dockerfile_targets,
    dotenv_names,
)

SCHEMA = Path(__file__).parent / "compose_spec" / "compose-spec.json"
PROFILES = ("demo", "monitoring", "per-instrument")


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def active_services(profiles: tuple[str, ...]) -> set[str]:
    return {
        name
        for name, service in compose()["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }


# ---------------------------------------------------------------- the specification


def test_compose_file_matches_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


def test_the_schema_check_catches_mistakes() -> None:
    broken = json.loads(json.dumps(compose()))
    broken["services"]["producer"]["healthcheck"] = {"test": ["CMD", "true"], "intervall": "5s"}
    broken["services"]["consumer"]["depends_on"]["mysql"]["condition"] = "service_ready"
    broken["volumes"]["mysql-data"] = "yes"
    found = "\n".join(schema_errors(broken))
    assert "intervall" in found
    assert "service_ready" in found
    assert "volumes/mysql-data" in found


@pytest.mark.parametrize(
    "profiles",
    [
        combo
        for size in range(len(PROFILES) + 1)
        for combo in itertools.combinations(PROFILES, size)
    ],
    ids=lambda combo: "+".join(combo) or "default",
)
def test_every_profile_combination_resolves(profiles: tuple[str, ...]) -> None:
    active = active_services(profiles)
    for name in active:
        for dependency, spec in compose_service(name).get("depends_on", {}).items():
            assert dependency in active or spec.get("required") is False, (
                f"{name} needs {dependency}, which {profiles or 'the default'} does not start"
            )


# ---------------------------------------------------------------- the project's rules
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
        "analysis": (),
        "repair": (),
        "simulator": ("demo",),
        "consumer-eth-btc": ("per-instrument",),
        "consumer-btc-usd": ("per-instrument",),
        "consumer-btc-eur": ("per-instrument",),
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
    for name in ("redpanda", "mysql", "simulator", "prometheus", "grafana", "analysis"):
        assert "test" in compose_service(name)["healthcheck"], name
    expected = {
        "console": {"redpanda": "service_healthy"},
        "topics": {"redpanda": "service_healthy"},
        "producer": {"topics": "service_completed_successfully", "simulator": "service_healthy"},
        "consumer": {"topics": "service_completed_successfully", "mysql": "service_healthy"},
        "consumer-eth-btc": {
            "topics": "service_completed_successfully",
            "mysql": "service_healthy",
        },
        "analysis": {"mysql": "service_healthy"},
        "repair": {
            "topics": "service_completed_successfully",
            "mysql": "service_healthy",
            "simulator": "service_healthy",
        },
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
    # The analysis target comes with the analysis service's branch; until it is merged the
    # name is taken from the contract (the Dockerfile tests check every target that exists).
    targets = dockerfile_targets() | {"analysis"}
    for name, service in compose()["services"].items():
        for mount in service.get("volumes", []):
            source = str(mount).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
        if "build" in service:
            assert service["build"]["target"] in targets, name


def test_compose_app_services_read_real_settings() -> None:
    app = {
        "topics": "topics",
        "producer": "producer",
        "consumer": "consumer",
        "consumer-eth-btc": "consumer",
        "analysis": "analysis",
        "repair": "repair",
    }
    for name, service_kind in app.items():
        service = compose_service(name)
        assert service["env_file"] == [{"path": ".env", "required": False}], name
        values = {
            key: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
            for key, value in service["environment"].items()
        }
        check_settings(service_kind, values)
    assert compose_service("consumer")["environment"]["MYSQL_HOST"] == "mysql"
    for name in ("topics", "producer", "consumer"):
        env = compose_service(name)["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "redpanda:29092", name
    assert compose_service("producer")["environment"]["FEED_CONNECTIONS"] == "2"


def test_compose_analysis_service() -> None:
    analysis = compose_service("analysis")
    assert analysis["build"]["target"] == "analysis"
    assert analysis["command"] == ["python", "-m", "analysis"]
    env = analysis["environment"]
    assert (env["MYSQL_USER"], env["MYSQL_HOST"], env["ANALYSIS_PORT"]) == (
        "ticker_reader",
        "mysql",
        "8000",
    )
    assert any(str(port).endswith(":8000:8000") for port in analysis["ports"])
    assert "127.0.0.1:8000/healthz" in " ".join(analysis["healthcheck"]["test"])
    assert not [key for key in env if key.startswith("KAFKA_")], "it reads MySQL only"


def test_compose_repair_service() -> None:
    repair = compose_service("repair")
    assert repair["build"]["target"] == "repair"
    assert repair["command"] == ["python", "-m", "repair", "--follow"]
    env = repair["environment"]
    assert (env["MYSQL_USER"], env["MYSQL_HOST"], env["REPAIR_METRICS_PORT"]) == (
        "ticker_reader",
        "mysql",
        "9103",
    )
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "redpanda:29092"
    assert any(str(port).endswith(":9103:9103") for port in repair["ports"])
    assert "127.0.0.1:9103/healthz" in " ".join(repair["healthcheck"]["test"])
    # Without the demo profile there is no simulator: repair must not require it.
    assert repair["depends_on"]["simulator"]["required"] is False


def test_compose_one_consumer_per_instrument() -> None:
    consumers = {
        name: service
        for name, service in compose()["services"].items()
        if name.startswith("consumer-")
    }
    owned = [service["environment"]["CONSUMER_PRODUCTS"] for service in consumers.values()]
    assert owned == list(PRODUCTS), "each instrument exactly once, in partition order"
    everything = compose_service("consumer")
    for name, service in consumers.items():
        assert service["profiles"] == ["per-instrument"], name
        assert "ports" not in service, "the host port 9102 is the all-products consumer's"
        assert service["build"] == everything["build"] and service["image"] == everything["image"]
        assert {k: v for k, v in service["environment"].items() if k != "CONSUMER_PRODUCTS"} == (
            everything["environment"]
        ), "the same settings as the all-products consumer, PRODUCTS included"
    header = (ROOT / "docker-compose.yml").read_text().split("\nname:")[0]
    assert "--profile per-instrument up -d --scale consumer=0" in header


def test_compose_variables_are_documented() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", text))
    documented = set(dotenv_names())
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
