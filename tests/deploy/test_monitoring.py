"""Monitoring: Prometheus scrapes both services; the dashboard queries only exported metrics."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import yaml
from prometheus_client.core import REGISTRY

import consumer.metrics
import producer.metrics
from tests.deploy.contract import ROOT, compose_service

MONITORING = ROOT / "deploy" / "monitoring"


def load_json(path: Any) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict), f"{path.name}: not a JSON object"
    return data


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
