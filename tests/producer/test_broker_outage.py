"""The broker goes away while the producer reads: buffered and delivered, or exactly counted."""

from __future__ import annotations

import json
import time

import pytest

from ops.http import http_get
from ops.pipeline import PRODUCTS
from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import Pipeline
from tests.factories import fatal_line, free_port, start_service, stop_service, wait_for
from tests.producer.test_producer_e2e import published, sent

# Stops the broker every test shares: runs alone, after the parallel part.
pytestmark = pytest.mark.exclusive


def final_counts(stderr: str) -> dict[str, object]:
    for line in reversed(stderr.splitlines()):
        if '"producer stopped"' in line:
            return dict(json.loads(line))
    raise AssertionError(f"no shutdown summary in:\n{stderr[-2000:]}")


def run_through_broker_outage(
    pipeline: Pipeline, config: SimulatorConfig, health_port: int | None = None, **env: str
) -> tuple[dict[str, list[bytes]], dict[str, object], str]:
    """Producer reads the whole feed while the broker is stopped for 4 s in the middle.

    Returns what the simulator sent, the producer's shutdown summary and its log. With
    `health_port`, /healthz must say 503 during the outage and 200 again after it.
    """
    if health_port is not None:
        env["PRODUCER_METRICS_PORT"] = str(health_port)
    health = f"http://127.0.0.1:{health_port}/healthz"
    with SimulatorThread(config) as simulator:
        process = start_service(
            "producer", pipeline, COINBASE_WS_URL=simulator.url, FEED_CONNECTIONS="1", **env
        )
        try:
            assert simulator.wait_until(lambda s: sum(s.ticker_counts().values()) > 300, 15)
            pipeline.services.control("stop", "kafka")
            during = sum(simulator.ticker_counts().values())
            if health_port is not None:
                wait_for(lambda: http_get(health)[0] == 503, 10, "unhealthy while Kafka is down")
            time.sleep(4)
            assert sum(simulator.ticker_counts().values()) > during + 300, "feed kept flowing"
        finally:
            pipeline.services.control("start", "kafka")
        assert simulator.wait_until(lambda s: s.done(), timeout=40)
        if health_port is not None:
            wait_for(lambda: http_get(health)[0] == 200, 20, "healthy once Kafka is back")
        time.sleep(2)
        code, err = stop_service(process, timeout_s=60)
        expected = sent(simulator)
    assert code == 0, err[-2000:]
    return expected, final_counts(err), err


@pytest.mark.timeout(120)
def test_frames_read_while_broker_is_down_are_delivered_after_it_returns(
    pipeline: Pipeline,
) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=100, count=1200, seed=21)
    expected, summary, _log = run_through_broker_outage(pipeline, config, health_port=free_port())
    assert summary["undelivered"] == 0
    assert published(pipeline) == expected


@pytest.mark.timeout(120)
def test_overflowing_buffer_counts_exactly_what_was_dropped(pipeline: Pipeline) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=150, count=1200, seed=22)
    expected, summary, log = run_through_broker_outage(
        pipeline, config, PRODUCER_BUFFER_MESSAGES="100"
    )
    dropped = summary["dropped_buffer_full"]
    assert isinstance(dropped, dict) and sum(dropped.values()) > 0
    assert "KAFKA BUFFER FULL" in log
    found = published(pipeline)
    for product in PRODUCTS:
        assert len(set(found[product])) == len(found[product])
        assert set(found[product]) <= set(expected[product])
        assert len(found[product]) + dropped.get(product, 0) == len(expected[product])


@pytest.mark.timeout(120)
def test_ticks_still_undelivered_at_shutdown_are_counted_and_exit_3(
    pipeline: Pipeline,
) -> None:
    """SIGTERM while the broker is down: the flush gives up after FLUSH_TIMEOUT_S, and the
    producer says how many ticks it is losing instead of stopping as if all were sent."""
    config = SimulatorConfig(products=PRODUCTS, rate=100, count=1200, seed=23)
    with SimulatorThread(config) as simulator:
        process = start_service(
            "producer", pipeline, COINBASE_WS_URL=simulator.url, FLUSH_TIMEOUT_S="1"
        )
        try:
            assert simulator.wait_until(lambda s: sum(s.ticker_counts().values()) > 150, 15)
            pipeline.services.control("stop", "kafka")
            during = sum(simulator.ticker_counts().values())
            later = during + 150  # read while the broker is away: they wait in the buffer
            assert simulator.wait_until(lambda s: sum(s.ticker_counts().values()) > later, 15)
            code, err = stop_service(process, timeout_s=60)
        finally:
            pipeline.services.control("start", "kafka")
    summary = final_counts(err)
    enqueued, delivered = summary["enqueued"], summary["delivered"]
    assert isinstance(enqueued, dict) and isinstance(delivered, dict)
    undelivered, not_delivered = summary["undelivered"], summary["not_delivered"]
    assert isinstance(undelivered, int) and undelivered >= 150
    assert isinstance(not_delivered, dict) and sum(not_delivered.values()) == undelivered
    assert sum(enqueued.values()) - sum(delivered.values()) == undelivered
    assert code == 3, err[-2000:]
    assert fatal_line(err, 3).startswith(f"{undelivered} ticks not delivered to Kafka")
