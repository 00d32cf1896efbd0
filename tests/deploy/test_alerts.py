"""deploy/monitoring/alerts.yml, checked by Prometheus' own promtool and against the code.

- `promtool check config` (the scrape config and the rule files it loads) and `check rules`;
- `promtool test rules alerts.test.yml`: every alert shown firing on a failing series and
  silent on a healthy one;
- every alert has a severity, a summary naming its product or service, and a runbook entry
  in README.md; its expression uses only metrics the services export.
"""

from __future__ import annotations

import functools
import re
import subprocess
from typing import Any

import pytest
import yaml

from ops.promtool import promtool
from shared.failures import ExitCode
from tests.deploy.contract import ROOT, compose_service
from tests.deploy.test_monitoring import MONITORING, exported_metric_names

ALERTS = MONITORING / "alerts.yml"
ALERT_TESTS = MONITORING / "alerts.test.yml"
README = ROOT / "README.md"
RUNBOOK_HEADING = "### Alerts and runbook"
PROMQL_WORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring"}


@functools.cache
def load_yaml(path: Any) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    return data


def alerts() -> dict[str, dict[str, Any]]:
    rules = [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]
    named = {rule["alert"]: rule for rule in rules}
    assert len(named) == len(rules), "alert names must be unique (they are runbook anchors)"
    return named


@pytest.fixture(scope="module")
def promtool_path() -> str:
    try:
        return promtool()  # Debian's, unpacked on first use (ops/promtool.py)
    except SystemExit as exc:  # its one-line reason, not the end of the session
        pytest.fail(str(exc))


def run_promtool(path: str, *args: str) -> str:
    result = subprocess.run(
        [path, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_promtool_checks_config_and_rules(promtool_path: str) -> None:
    config = run_promtool(promtool_path, "check", "config", "prometheus.yml")
    assert "SUCCESS: 1 rule files found" in config
    rules = run_promtool(promtool_path, "check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(alerts())} rules found" in rules


def test_promtool_rule_tests_pass(promtool_path: str) -> None:
    output = run_promtool(promtool_path, "test", "rules", "alerts.test.yml")
    assert "SUCCESS" in output and "FAILED" not in output


def test_every_alert_is_shown_firing_and_silent() -> None:
    shown: dict[str, set[bool]] = {}
    for case in load_yaml(ALERT_TESTS)["tests"]:
        for check in case["alert_rule_test"]:
            shown.setdefault(check["alertname"], set()).add(bool(check["exp_alerts"]))
    for name in alerts():
        assert shown.get(name) == {True, False}, f"{name}: not shown both firing and silent"
    assert set(shown) <= set(alerts()), "a test names an alert that doesn't exist"


def test_alerts_have_severity_summary_and_runbook() -> None:
    anchors = runbook_anchors()
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        summary = rule["annotations"]["summary"]
        names_what = ("$labels.product", "$labels.job", "producer ", "consumer ", "analysis ")
        assert any(part in summary for part in names_what), f"{name}: summary names nothing"
        if "product" in fired_labels().get(name, set()):
            assert "$labels.product" in summary, f"{name}: summary omits the product"
        anchor = rule["annotations"]["runbook_url"]
        assert anchor == f"README.md#{slug(name)}", name
        assert slug(name) in anchors, f"{name}: no runbook entry in README.md"


def test_alert_expressions_use_exported_metrics() -> None:
    exported = exported_metric_names() | {"up"}  # up: Prometheus' own, per target
    for name, rule in alerts().items():
        used = metric_names(rule["expr"])
        assert used, f"{name}: no metric found in its expression"
        assert used <= exported, f"{name}: {sorted(used - exported)} not exported"


def test_metric_names_reads_promql() -> None:
    expr = (
        'sum by (job, product) (increase(a_total{status=~"5..", route!="/x"}[5m])) > 0\n'
        "or (b unless b offset 5m) and on (job) up offset 5m"
    )
    assert metric_names(expr) == {"a_total", "b", "up"}


def test_runbook_covers_every_exit_code() -> None:
    section = runbook_section()
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \|", section, re.M), f"exit code {int(code)}"


@pytest.mark.parametrize(
    ("service", "port"), [("producer", 9101), ("consumer", 9102), ("consumer-btc-usd", 9102)]
)
def test_compose_probes_healthz_which_keeps_the_stall_gauges_current(
    service: str, port: int
) -> None:
    # producer_stalled and consumer_writer_stalled are computed when /healthz answers.
    probe = " ".join(compose_service(service)["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/healthz" in probe


def test_compose_prometheus_mounts_the_rule_files_beside_its_config() -> None:
    mounts = compose_service("prometheus")["volumes"]
    for rule_file in load_yaml(MONITORING / "prometheus.yml")["rule_files"]:
        assert f"./deploy/monitoring/{rule_file}:/etc/prometheus/{rule_file}:ro" in mounts


# ---------------------------------------------------------------- helpers


def fired_labels() -> dict[str, set[str]]:
    """Label names of the alerts the rule tests expect, by alert."""
    found: dict[str, set[str]] = {}
    for case in load_yaml(ALERT_TESTS)["tests"]:
        for check in case["alert_rule_test"]:
            for alert in check["exp_alerts"]:
                found.setdefault(check["alertname"], set()).update(alert["exp_labels"])
    return found


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names (inside {} or after by/on/...) or durations."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = re.findall(r"(?<![\w:])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text)
    return {name for name in names if name not in PROMQL_WORDS}


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_section() -> str:
    text = README.read_text()
    assert RUNBOOK_HEADING in text, f"README.md has no {RUNBOOK_HEADING!r}"
    section = text.split(RUNBOOK_HEADING, 1)[1]
    return re.split(r"^#{1,3} ", section, maxsplit=1, flags=re.M)[0]


def runbook_anchors() -> set[str]:
    lines = runbook_section().splitlines()
    return {slug(line.lstrip("#")) for line in lines if line.startswith("####")}
