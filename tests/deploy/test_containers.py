"""`make test-containers`'s pieces, offline: the compose file's locked-down app containers, the
check's override, what each image must carry, and the helpers that install the tools.
(The check itself runs under `make test-containers`, not here: it needs a Docker engine.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops import (
    base_image,
    compose_check,
    compose_plugin,
    container_checks,
    containers,
    docker_engine,
    images,
)
from ops.pipeline import PRODUCTS, Pipeline, Services
from tests.deploy.contract import ROOT, check_settings, compose, dockerfile


class ComposeLoader(yaml.SafeLoader):
    """Reads compose's `!reset` (an override's "drop what the base file says")."""


ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def override() -> dict[str, Any]:
    data = yaml.load(compose_check.OVERRIDE.read_text(), Loader=ComposeLoader)
    assert isinstance(data, dict)
    return data


def fake_pipeline() -> Pipeline:
    services = Services("localhost:9092", "127.0.0.1", 3306, "root", "", local=False)
    return Pipeline(services, PRODUCTS, "t.ticker", "t.dlq", "t_db", "t-writer", "t.matches")


def built_services() -> list[str]:
    return [name for name, service in compose()["services"].items() if "build" in service]


# ---------------------------------------------------------------- compose: read-only, non-root


def test_every_app_container_is_read_only_and_non_root() -> None:
    for name in built_services():
        service = compose()["services"][name]
        assert service["user"] == "10001:10001", name
        assert service["read_only"] is True, name
        assert [mount.split(":")[0] for mount in service["tmpfs"]] == ["/tmp"], name


def test_the_image_user_is_the_compose_user() -> None:
    assert "useradd --system --uid 10001 --gid app" in dockerfile()
    assert "USER 10001:10001" in dockerfile()


# ---------------------------------------------------------------- the check's override


def test_override_changes_only_services_of_the_compose_file() -> None:
    assert set(override()["services"]) <= set(compose()["services"])
    for name in ("redpanda", "mysql", *compose_check.DEMO, *compose_check.PER_INSTRUMENT):
        assert name in override()["services"], name


def test_override_keeps_every_container_on_the_host_network() -> None:
    for name, service in override()["services"].items():
        assert service["network_mode"] == "host", name
        assert "ports" in service and service["ports"] is None, f"{name}: ports not reset"
        if "build" in compose()["services"][name]:
            assert service["build"] == {"network": "host"}, name


def test_override_probes_replace_the_images_that_cannot_be_pulled() -> None:
    for name in ("redpanda", "mysql"):
        probe = override()["services"][name]
        assert probe["image"] == "${PYTHON_IMAGE:?}"
        assert probe["user"] == "10001:10001" and probe["read_only"] is True
        assert probe["volumes"] is None and probe["environment"] is None
        check = " ".join(probe["healthcheck"]["test"])
        assert "127.0.0.1" in check


def test_every_variable_of_the_override_is_set_by_the_check() -> None:
    text = compose_check.OVERRIDE.read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    env = compose_check.compose_env(fake_pipeline(), "stand-in:1")
    assert required <= set(env)
    ports = [
        env[name]
        for name in env
        if name.endswith("_PORT") and name not in {"MYSQL_PORT", "KAFKA_PORT"}
    ]
    assert len(set(ports)) == len(ports) == 8, "each service its own free port"


def test_check_values_win_over_the_callers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPIC", "coinbase.ticker")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    env = compose_check.compose_env(fake_pipeline(), "stand-in:1")
    assert env["KAFKA_TOPIC"] == "t.ticker" and env["MYSQL_DATABASE"] == "t_db"
    assert env["SOMETHING_ELSE"] == "kept"


@pytest.mark.parametrize(
    ("service", "settings"),
    [
        ("topics", "topics"),
        ("producer", "producer"),
        ("consumer", "consumer"),
        ("consumer-btc-usd", "consumer"),
        ("analysis", "analysis"),
        ("repair", "repair"),
    ],
)
def test_override_environment_is_real_settings(service: str, settings: str) -> None:
    env = compose_check.compose_env(fake_pipeline(), "stand-in:1")
    values = {
        name: re.sub(r"\$\{([A-Z0-9_]+)(:[?-][^}]*)?\}", lambda m: env.get(m.group(1), "x"), str(v))
        for name, v in override()["services"][service]["environment"].items()
    }
    check_settings(settings, values)


# ---------------------------------------------------------------- what each image carries


def test_every_image_has_its_own_lock_and_dockerfile_stage() -> None:
    for image, (extra, _) in images.IMAGES.items():
        assert f"FROM runtime AS {image}" in dockerfile()
        assert f"COPY --from=deps-{extra} /opt/venv /opt/venv" in dockerfile()
        assert f"--require-hashes --no-deps -r requirements-{extra}.lock" in dockerfile()


def test_each_image_lacks_the_other_services_packages() -> None:
    lacks = {image: set(images.expected(image).lacks_modules) for image in images.IMAGES}
    assert {"pymysql", "fastapi", "uvicorn", "tenacity"} <= lacks["producer"]
    assert {"websockets", "fastapi", "uvicorn"} <= lacks["consumer"]
    assert {"confluent_kafka", "websockets", "tenacity"} <= lacks["analysis"]
    assert {"pymysql", "fastapi", "uvicorn"} <= lacks["base"]
    assert {"websockets", "fastapi", "uvicorn"} <= set(images.expected("repair").lacks_modules)
    assert images.expected("producer").lacks_code == ("consumer", "analysis", "repair", "simulator")


def test_expected_modules_come_from_the_source_tree() -> None:
    modules = images.expected("consumer").modules
    assert {"consumer", "consumer.__main__", "consumer.sink.mysql_sink"} <= modules
    assert not any(name.startswith(("producer", "shared")) for name in modules)


def test_the_probe_reports_what_is_wrong() -> None:
    want = images.expected("producer")
    clean = {
        "failed": {},
        "modules": sorted(want.modules),
        "distributions": sorted(want.distributions | {"pip", "setuptools"}),
        "present": [],
    }
    assert images.problems(want, clean) == []
    broken = clean | {
        "failed": {"producer.feed": "ModuleNotFoundError('websockets')"},
        "modules": ["producer"],
        "distributions": [*clean["distributions"], "fastapi"],
        "present": ["fastapi"],
    }
    found = "\n".join(images.problems(want, broken))
    assert "import producer.feed fails" in found
    assert "not copied" in found and "producer.service" in found
    assert "extra ['fastapi']" in found
    assert "has fastapi" in found


def test_the_probe_runs_here() -> None:
    """The probe's own code, run by this interpreter against this checkout."""
    want = images.expected("analysis")
    result = subprocess.run(
        [sys.executable, "-c", images.PROBE, images.probe_argument(want)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    report = yaml.safe_load(result.stdout)
    assert report["failed"] == {}
    assert set(report["modules"]) == want.modules
    assert "confluent_kafka" in report["present"]  # the dev venv holds every service's packages


# ---------------------------------------------------------------- the tools


def test_dockerd_runs_without_bridge_or_iptables() -> None:
    command = docker_engine.dockerd_command()
    assert "--bridge=none" in command and "--iptables=false" in command
    assert any(part.startswith("--pidfile=") for part in command)


def test_compose_version_gate() -> None:
    assert compose_plugin.recent_enough("5.6.0")
    assert compose_plugin.recent_enough("v2.24.0")
    assert not compose_plugin.recent_enough("2.23.3")
    assert not compose_plugin.recent_enough("1.29.2")
    assert not compose_plugin.recent_enough("dev")


def test_debian_mirror_from_apt_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
    )
    assert base_image.debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://other.example/debian bookworm main\n"
    )
    assert base_image.debian_mirror(tmp_path) == "http://other.example/debian"
    monkeypatch.setenv("DEBIAN_MIRROR", "http://chosen.example/debian")
    assert base_image.debian_mirror(tmp_path) == "http://chosen.example/debian"


def test_base_image_tag_follows_its_inputs() -> None:
    assert base_image.tag(b"ca one") == base_image.tag(b"ca one")
    assert base_image.tag(b"ca one") != base_image.tag(b"ca two")
    assert base_image.tag(b"x").startswith(f"{base_image.REPOSITORY}:3.11-bookworm-")


def test_timings_report() -> None:
    timings = containers.Timings()
    timings.steps += [("build", 12.04), ("demo up", 5.5)]
    report = timings.report(20.0)
    assert re.search(r"build\s+12\.0 s", report) and re.search(r"total\s+20\.0 s", report)


def test_make_and_ci_run_the_check_after_the_suite() -> None:
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "test-containers"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines()[-1] == ".venv/bin/python -m ops.containers"
    commands = [
        line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make")
    ]
    assert commands == ["make test", "make test-containers"]


def test_metric_samples_reads_one_counter_by_product(monkeypatch: pytest.MonkeyPatch) -> None:
    body = (
        b"# HELP consumer_rows_written_total Rows inserted\n"
        b'consumer_rows_written_total{product="BTC-USD",table="order"} 42.0\n'
        b'consumer_rows_written_total{product="ETH-BTC",table="trade"} 7.0\n'
        b'consumer_rows_written_total{product="ETH-BTC",table="order"} 0.0\n'
        b'consumer_rows_written_created{product="BTC-USD",table="order"} 1.7e9\n'
        b'consumer_duplicates_total{product="ETH-BTC",table="order"} 3.0\n'
    )
    monkeypatch.setattr(container_checks, "http_get", lambda url, timeout_s: (200, body))
    read = container_checks.metric_samples
    written = "consumer_rows_written_total"
    assert read("9102", written, table="order") == {"BTC-USD": 42.0, "ETH-BTC": 0.0}
    assert read("9102", written) == {"BTC-USD": 42.0, "ETH-BTC": 7.0}
    assert read("9102", written, table="order", missing="x") == {"BTC-USD": 42.0, "ETH-BTC": 0.0}
    monkeypatch.setattr(container_checks, "http_get", lambda url, timeout_s: (0, b""))
    assert read("9102", written) == {}


class FakeCompose:
    """`state(service)` as docker inspect reports it, from a table."""

    def __init__(self, states: dict[str, dict[str, Any]]) -> None:
        self.states = states

    def state(self, service: str) -> dict[str, Any]:
        return {"State": self.states[service]}


def healthy(status: str) -> dict[str, Any]:
    return {"Status": "running", "ExitCode": 0, "Health": {"Status": status}}


def test_wait_healthy_accepts_a_finished_one_shot_job() -> None:
    compose = FakeCompose(
        {"producer": healthy("healthy"), "topics": {"Status": "exited", "ExitCode": 0}}
    )
    compose_check.wait_healthy(compose, ["producer", "topics"], 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"Status": "exited", "ExitCode": 2}, "topics exited with 2"),
        ({"Status": "exited", "ExitCode": 1, "Health": {"Status": "unhealthy"}}, "exited"),
    ],
)
def test_wait_healthy_fails_at_once_on_an_exit(state: dict[str, Any], message: str) -> None:
    compose = FakeCompose({"topics": state})
    with pytest.raises(compose_check.CheckFailed, match=message):
        compose_check.wait_healthy(compose, ["topics"], 30)  # type: ignore[arg-type]


def test_wait_healthy_gives_up_after_its_time() -> None:
    compose = FakeCompose({"producer": healthy("starting")})
    with pytest.raises(compose_check.CheckFailed, match="not within"):
        compose_check.wait_healthy(compose, ["producer"], 0.1)  # type: ignore[arg-type]
