"""Monitoring: Prometheus scrapes what runs; the dashboard queries only exported metrics.

The alert rules have their own module, test_alerts.py."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import yaml
from prometheus_client.core import REGISTRY

import analysis.metrics
import consumer.metrics
import producer.metrics
import repair.metrics
import shared.supervision
from tests.deploy.contract import ROOT, compose, compose_service

MONITORING = ROOT / "deploy" / "monitoring"


def load_json(path: Any) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict), f"{path.name}: not a JSON object"
    return data


def exported_metric_names() -> set[str]:
    """Sample names the services export (the modules defining them are imported above)."""
    assert producer.metrics and consumer.metrics and analysis.metrics and shared.supervision
    assert repair.metrics
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


def scrape_jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def static_targets(job: dict[str, Any]) -> list[str]:
    return [target for group in job.get("static_configs", []) for target in group["targets"]]


def test_prometheus_scrapes_producer_analysis_and_repair() -> None:
    jobs = scrape_jobs()
    assert set(jobs) == {"producer", "analysis", "repair", "consumer"}
    repair_port = compose_service("repair")["environment"]["REPAIR_METRICS_PORT"]
    assert static_targets(jobs["repair"]) == [f"repair:{repair_port}"]
    producer_port = compose_service("producer")["environment"]["PRODUCER_METRICS_PORT"]
    analysis_port = compose_service("analysis")["environment"]["ANALYSIS_PORT"]
    assert static_targets(jobs["producer"]) == [f"producer:{producer_port}"]
    assert static_targets(jobs["analysis"]) == [f"analysis:{analysis_port}"]


def test_prometheus_scrapes_every_compose_consumer_with_its_instrument() -> None:
    """Each consumer service of docker-compose.yml (every profile) is found by its name and
    labelled with what it writes: its CONSUMER_PRODUCTS, or "all"."""
    job = scrape_jobs()["consumer"]
    [lookup] = job["dns_sd_configs"]
    consumers = {
        name: service
        for name, service in compose()["services"].items()
        if service.get("build", {}).get("target") == "consumer"
    }
    assert sorted(lookup["names"]) == sorted(consumers)
    for name, service in consumers.items():
        environment = service["environment"]
        assert lookup["port"] == int(environment["CONSUMER_METRICS_PORT"])
        labels = relabel(job["relabel_configs"], {"__meta_dns_name": name})
        assert labels["instrument"] == environment.get("CONSUMER_PRODUCTS", "all"), name
        assert labels["instance"] == f"{name}:{lookup['port']}"
        assert labels["service"] == "consumer"


def relabel(rules: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, str]:
    """Prometheus' `replace` relabelling (its default action), which is all the config uses."""
    labels = dict(labels)
    for rule in rules:
        assert rule.get("action", "replace") == "replace"
        sources = [labels.get(name, "") for name in rule.get("source_labels", [])]
        value = rule.get("separator", ";").join(sources)
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if match:
            replacement = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
            labels[rule["target_label"]] = match.expand(replacement)
    return labels


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


def test_grafana_reads_mysql_as_the_select_only_account() -> None:
    provisioned = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text()
    )
    (mysql,) = [source for source in provisioned["datasources"] if source["type"] == "mysql"]
    assert mysql["user"] == "${GRAFANA_MYSQL_USER}"
    assert mysql["secureJsonData"]["password"] == "${GRAFANA_MYSQL_PASSWORD}"
    env = compose_service("grafana")["environment"]
    schema = (ROOT / "schema.sql").read_text()
    account = env["GRAFANA_MYSQL_USER"]
    assert account == "ticker_reader"
    created = re.search(rf"CREATE USER IF NOT EXISTS '{account}'@'%' IDENTIFIED BY '(.*)'", schema)
    assert created and env["GRAFANA_MYSQL_PASSWORD"] == created.group(1)
    grants = re.findall(rf"GRANT (.+) ON \S+ TO '{account}'@'%'", schema)
    assert grants and set(grants) == {"SELECT"}, grants  # on every table it reads
