"""The broker goes away while the producer reads: buffered and delivered, or exactly counted.

One outage serves three producers, each on its own pipeline and feed, so the broker stops
once for all of them: one rides it out and delivers everything (its /healthz 503 during the
outage, 200 after), one with a 100-frame buffer drops and counts exactly what did not fit,
and one is stopped (SIGTERM) while the broker is away and says how many ticks it loses.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from ops.http import http_get
from ops.pipeline import PRODUCTS, Services
from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import Pipeline
from tests.factories import fatal_line, free_port, start_service, stop_service, wait_for
from tests.producer.test_producer_e2e import published, sent

# Stops the broker: runs one at a time, on a private broker of its own (ops/run-tests.sh).
pytestmark = pytest.mark.exclusive


def final_counts(stderr: str) -> dict[str, object]:
    for line in reversed(stderr.splitlines()):
        if '"producer stopped"' in line:
            return dict(json.loads(line))
    raise AssertionError(f"no shutdown summary in:\n{stderr[-2000:]}")


@dataclass
class Run:
    """One producer through the outage: its pipeline, what the feed sent, how it ended."""

    pipeline: Pipeline
    expected: dict[str, list[bytes]]
    code: int
    stderr: str
    unhealthy_during: bool = False
    healthy_after: bool = False

    @property
    def summary(self) -> dict[str, object]:
        return final_counts(self.stderr)


def ticks_sent(simulator: SimulatorThread) -> int:
    return sum(simulator.ticker_counts().values())


@pytest.fixture(scope="module")
def outage(services: Services) -> Iterator[dict[str, Run]]:
    """Three producers read while the broker is stopped for 4 s in the middle of their feeds."""
    feeds = {
        "delivered": SimulatorConfig(products=PRODUCTS, rate=100, count=1200, seed=21),
        "overflow": SimulatorConfig(products=PRODUCTS, rate=150, count=1200, seed=22),
        "stopped": SimulatorConfig(products=PRODUCTS, rate=100, count=1200, seed=23),
    }
    env = {
        "delivered": {"PRODUCER_METRICS_PORT": str(free_port())},
        "overflow": {"PRODUCER_BUFFER_MESSAGES": "100"},
        "stopped": {"FLUSH_TIMEOUT_S": "1"},
    }
    health = f"http://127.0.0.1:{env['delivered']['PRODUCER_METRICS_PORT']}/healthz"
    pipelines = {name: Pipeline.create("test", PRODUCTS, services) for name in feeds}
    runs: dict[str, Run] = {}
    with ExitStack() as stack:
        for pipeline in pipelines.values():
            stack.callback(pipeline.drop)
        sims = {n: stack.enter_context(SimulatorThread(c)) for n, c in feeds.items()}
        processes: dict[str, subprocess.Popen[bytes]] = {
            name: start_service(
                "producer",
                pipelines[name],
                COINBASE_WS_URL=sims[name].url,
                FEED_CONNECTIONS="1",
                **env[name],
            )
            for name in feeds
        }
        for sim in sims.values():
            assert sim.wait_until(lambda s: ticks_sent(s) > 300, 15)
        sent_at_stop = {name: ticks_sent(sim) for name, sim in sims.items()}
        pipelines["delivered"].services.control("stop", "kafka")
        try:
            unhealthy = False
            deadline = time.monotonic() + 10
            while not unhealthy and time.monotonic() < deadline:
                unhealthy = http_get(health)[0] == 503
                time.sleep(0.2)
            later = sent_at_stop["stopped"] + 150  # read while the broker is away
            assert sims["stopped"].wait_until(lambda s: ticks_sent(s) > later, 15)
            code, err = stop_service(processes["stopped"], timeout_s=60)
            runs["stopped"] = Run(pipelines["stopped"], sent(sims["stopped"]), code, err)
            time.sleep(4)
            for name in ("delivered", "overflow"):
                assert ticks_sent(sims[name]) > sent_at_stop[name] + 300, "feed flowed"
        finally:
            pipelines["delivered"].services.control("start", "kafka")
        for name in ("delivered", "overflow"):
            assert sims[name].wait_until(lambda s: s.done(), timeout=40)
        wait_for(lambda: http_get(health)[0] == 200, 20, "healthy once Kafka is back")
        time.sleep(2)
        for name in ("delivered", "overflow"):
            code, err = stop_service(processes[name], timeout_s=60)
            runs[name] = Run(pipelines[name], sent(sims[name]), code, err)
        runs["delivered"].unhealthy_during = unhealthy
        runs["delivered"].healthy_after = True
        yield runs


@pytest.mark.timeout(180)
def test_frames_read_while_broker_is_down_are_delivered_after_it_returns(
    outage: dict[str, Run],
) -> None:
    run = outage["delivered"]
    assert run.code == 0, run.stderr[-2000:]
    assert run.unhealthy_during and run.healthy_after
    assert run.summary["undelivered"] == 0
    assert published(run.pipeline) == run.expected


@pytest.mark.timeout(180)
def test_overflowing_buffer_counts_exactly_what_was_dropped(outage: dict[str, Run]) -> None:
    run = outage["overflow"]
    assert run.code == 0, run.stderr[-2000:]
    dropped = run.summary["dropped_buffer_full"]
    assert isinstance(dropped, dict) and sum(dropped.values()) > 0
    assert "KAFKA BUFFER FULL" in run.stderr
    found = published(run.pipeline)
    for product in PRODUCTS:
        assert len(set(found[product])) == len(found[product])
        assert set(found[product]) <= set(run.expected[product])
        assert len(found[product]) + dropped.get(product, 0) == len(run.expected[product])


@pytest.mark.timeout(180)
def test_ticks_still_undelivered_at_shutdown_are_counted_and_exit_3(
    outage: dict[str, Run],
) -> None:
    """SIGTERM while the broker is down: the flush gives up after FLUSH_TIMEOUT_S, and the
    producer says how many ticks it is losing instead of stopping as if all were sent."""
    run = outage["stopped"]
    summary = run.summary
    enqueued, delivered = summary["enqueued"], summary["delivered"]
    assert isinstance(enqueued, dict) and isinstance(delivered, dict)
    undelivered, not_delivered = summary["undelivered"], summary["not_delivered"]
    assert isinstance(undelivered, int) and undelivered >= 150
    assert isinstance(not_delivered, dict) and sum(not_delivered.values()) == undelivered
    assert sum(enqueued.values()) - sum(delivered.values()) == undelivered
    assert run.code == 3, run.stderr[-2000:]
    assert fatal_line(run.stderr, 3).startswith(f"{undelivered} ticks not delivered to Kafka")
