"""python -m repair --follow: while trades keep coming and nothing stores them, the interior
hole and the growing tail are repaired, each id once; /healthz, /metrics, SIGTERM -> 0."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest

from ops.pipeline import Pipeline, free_port
from simulator import SimulatorConfig, SimulatorThread

from .harness import market, published_ids, start_follow, store

pytestmark = pytest.mark.timeout(90)


def test_follow_keeps_the_tape_complete(tape: Pipeline) -> None:
    config = SimulatorConfig(products=tape.products, rate=30, seed=3, autostart=True)
    port = free_port()
    with SimulatorThread(config) as sim:
        assert sim.wait_until(lambda s: min(s.trade_counts().values()) >= 60, timeout=20)
        made = sim.trades()
        # Stored: the first 50 trades of each product but ids 20..29 (the producer was down),
        # nothing after (it is down now).
        store(tape, [t for trades in made.values() for i, t in enumerate(trades[:50])
                     if not 20 <= i < 30])  # fmt: skip
        repair = start_follow(
            tape,
            sim.rest_url,
            REPAIR_POLL_S="0.5",
            REPAIR_SETTLE_S="0.5",
            REPAIR_METRICS_PORT=str(port),
        )
        try:
            target = {p: trades[-1].trade_id for p, trades in sim.trades().items()}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ids = published_ids(tape)
                if all(ids[p] and max(ids[p]) >= target[p] for p in tape.products):
                    break
                time.sleep(0.5)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                health = json.loads(answer.read())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                metrics = answer.read().decode()
        finally:
            os.kill(repair.pid, signal.SIGTERM)
            _, stderr = repair.communicate(timeout=20)
        trades = sim.trades()
    assert repair.returncode == 0, stderr
    assert health["healthy"] is True and health["throttled_429"] == 0
    for name in ("repair_holes_open", "repair_trades_repaired_total", "repair_rest_requests_total",
                 "repair_rest_throttled_total"):  # fmt: skip
        assert name in metrics
    ids = published_ids(tape)
    for product in tape.products:
        found = ids[product]
        assert len(found) == len(set(found)), "published twice"
        first = trades[product][0].trade_id
        expected = set(range(first + 20, first + 30)) | set(range(first + 50, max(found) + 1))
        assert set(found) == expected, product
        assert max(found) >= target[product]


def test_follow_outlives_a_rest_outage(tape: Pipeline) -> None:
    """REST down: --follow stays up (no crash loop), /healthz says why (503), SIGTERM -> 0."""
    with market(count=50) as sim:
        store(tape, [t for trades in sim.trades().values() for t in trades[:20]])
    port = free_port()
    repair = start_follow(
        tape,
        f"http://127.0.0.1:{free_port()}",  # nobody listens
        REPAIR_POLL_S="0.2",
        REPAIR_REST_GIVE_UP_S="0.5",
        REPAIR_METRICS_PORT=str(port),
    )
    try:
        deadline, answer = time.monotonic() + 20, 0
        while time.monotonic() < deadline and answer != 503:
            time.sleep(0.3)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                answer = 200
            except urllib.error.HTTPError as error:
                answer, health = error.code, json.loads(error.read())
            except OSError:
                continue
        assert answer == 503 and "Coinbase REST failed" in health["last_error"]
        assert repair.poll() is None, "still running"
    finally:
        os.kill(repair.pid, signal.SIGTERM)
        _, stderr = repair.communicate(timeout=20)
    assert repair.returncode == 0, stderr
