"""Replaying a JSON-lines capture verbatim."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simulator import SimulatorConfig, SimulatorThread

from .helpers import collect, open_client, subscribe

pytestmark = pytest.mark.timeout(30)

CAPTURE = [
    '{"type": "ticker", "sequence": 1, "product_id": "ETH-BTC", "price": "0.03712"}',
    '{"type":"heartbeat","last_trade_id":0,"product_id":"BTC-USD","sequence":9,"time":"x"}',
    '{"type":"status","products":[]}',
    "not json at all",
    "",
    '{"type":"ticker","sequence":2,"product_id":"XRP-JPY","price":"71.5"}',
    '{"type":"ticker","sequence":3,"product_id":"ETH-BTC","price":"0.03713"}',
]


def write_capture(tmp_path: Path) -> Path:
    path = tmp_path / "capture.jsonl"
    path.write_text("\n".join(CAPTURE) + "\n")
    return path


def test_replay_sends_subscribed_and_productless_lines_verbatim(tmp_path: Path) -> None:
    config = SimulatorConfig(
        products=("ETH-BTC", "BTC-USD"), rate=0, replay_file=write_capture(tmp_path)
    )
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        # XRP-JPY is not configured, but it is in the capture, so it is a known product.
        answer = subscribe(ws, ["ETH-BTC", "XRP-JPY"], ["ticker"])
        assert answer["type"] == "subscriptions"
        frames = collect(ws, 0.5)
        assert sim.done()
        sent = sim.sent_tickers()
    expected = [line for line in CAPTURE if line and "BTC-USD" not in line]
    assert frames == expected
    assert sent["ETH-BTC"] == [CAPTURE[0].encode(), CAPTURE[6].encode()]
    assert sent["XRP-JPY"] == [CAPTURE[5].encode()]


def test_replay_is_paced_by_rate(tmp_path: Path) -> None:
    config = SimulatorConfig(products=("ETH-BTC",), rate=20, replay_file=write_capture(tmp_path))
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["ETH-BTC", "BTC-USD", "XRP-JPY"], ["ticker"])
        started = time.monotonic()
        assert sim.wait_until(lambda s: s.done(), timeout=5)
        elapsed = time.monotonic() - started
        assert len(collect(ws, 0.2)) == 6
    assert 0.2 < elapsed < 1.0  # 6 lines at 20 lines/s
