"""The consumer's command line: help without starting anything, CONSUMER_PRODUCTS checked
at start-up, and the backfill's machine-readable summary."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.failures import EXIT_CODES_HELP
from tests.conftest import ROOT, Pipeline, python_env
from tests.consumer.harness import Feed, assert_exact
from tests.consumer.test_backfill import run_backfill
from tests.factories import fatal_line, free_port

NOWHERE = {
    # Help must not touch services: point them at closed ports.
    "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
    "MYSQL_PORT": str(free_port()),
}


def consumer(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumer", *args],
        cwd=ROOT,
        env=python_env({**NOWHERE, **env}),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("args", [("--help",), ("backfill", "--help")])
def test_help_lists_usage_settings_and_exit_codes_and_starts_nothing(args: tuple[str, ...]) -> None:
    started = time.monotonic()
    done = consumer(*args)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15
    text = done.stdout
    assert text.startswith("usage: python -m consumer")
    for name in ("CONSUMER_PRODUCTS", "MYSQL_BULK_LOAD", "BATCH_MAX_ROWS", "KAFKA_GROUP_ID"):
        assert name in text, name
    assert EXIT_CODES_HELP in text
    if "backfill" in args:
        assert "--summary-json PATH" in text and "--since" in text
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("value", "says"),
    [("XRP-USD", "XRP-USD not in PRODUCTS"), ("", "empty"), (" , ", "empty")],
)
def test_bad_consumer_products_stop_start_up_with_one_line(value: str, says: str) -> None:
    done = consumer(CONSUMER_PRODUCTS=value, PRODUCTS="ETH-BTC,BTC-USD")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("invalid setting CONSUMER_PRODUCTS") and says in lines[0], lines[0]


def test_a_backfill_time_that_is_not_iso_8601_stops_with_one_line(pipeline: Pipeline) -> None:
    done = consumer("backfill", "--since", "yesterday", **pipeline.env())
    assert done.returncode == 2, done.stderr
    assert fatal_line(done.stderr, 2) == "not an ISO-8601 time: 'yesterday'"


@pytest.mark.timeout(90)
def test_backfill_writes_its_summary_as_json(
    pipeline: Pipeline, tmp_path: Path, write_path: str
) -> None:
    feed = Feed(pipeline)
    feed.produce(100)
    feed.send_no_rows([(2, b"{not json")])
    summary_path = tmp_path / "summary.json"
    _run, table = run_backfill(
        pipeline, tmp_path, "--since", "earliest", "--summary-json", str(summary_path)
    )
    summary = json.loads(summary_path.read_text())
    assert summary["exit_code"] == 0 and summary["write_path"] == write_path
    assert summary["seconds"] > 0
    assert summary["total"] == {"written": 300, "duplicates": 0, "dead_letters": 1, "snapshots": 0}
    by_product = {entry["product"]: entry for entry in summary["products"]}
    for partition, product in enumerate(pipeline.products):
        entry = by_product[product]
        assert (entry["partition"], entry["start"], entry["end"]) == (
            partition,
            0,
            feed.offsets[partition],
        )
        assert entry["written"] == table[product].written == 100
    assert_exact(feed)
