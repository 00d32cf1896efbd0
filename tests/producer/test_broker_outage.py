"""The broker goes away while the producer reads: buffered and delivered, or exactly counted."""

from __future__ import annotations

import json
import time

import pytest

from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import Pipeline
from tests.factories import start_service, stop_service
from tests.producer.test_producer_e2e import PRODUCTS, published, sent


def final_counts(stderr: str) -> dict[str, object]:
    for line in reversed(stderr.splitlines()):
        if '"producer stopped"' in line:
            return dict(json.loads(line))
    raise AssertionError(f"no shutdown summary in:\n{stderr[-2000:]}")


def run_through_broker_outage(
    pipeline: Pipeline, config: SimulatorConfig, **env: str
) -> tuple[dict[str, list[bytes]], dict[str, object], str]:
    """Producer reads the whole feed while the broker is stopped for 4 s in the middle.

    Returns what the simulator sent, the producer's shutdown summary and its log.
    """
    with SimulatorThread(config) as simulator:
        process = start_service("producer", pipeline, COINBASE_WS_URL=simulator.url, **env)
        try:
            assert simulator.wait_until(lambda s: sum(s.ticker_counts().values()) > 300, 15)
            pipeline.services.control("stop", "kafka")
            during = sum(simulator.ticker_counts().values())
            time.sleep(4)
            assert sum(simulator.ticker_counts().values()) > during + 300, "feed kept flowing"
        finally:
            pipeline.services.control("start", "kafka")
        assert simulator.wait_until(lambda s: s.done(), timeout=40)
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
    expected, summary, _log = run_through_broker_outage(pipeline, config)
    assert summary["unacknowledged"] == 0
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
