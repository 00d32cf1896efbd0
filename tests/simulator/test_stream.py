"""The ticker and heartbeat stream: format, order, pacing, count, seed, backpressure."""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from typing import Any

import pytest

from simulator import SNAPSHOT_KEYS, TICKER_KEYS, SimulatorConfig, SimulatorThread

from .helpers import (
    DECIMAL,
    THREE,
    TIME,
    collect,
    collect_timed,
    is_snapshot,
    open_client,
    recv_text,
    subscribe,
    tickers,
)

pytestmark = pytest.mark.timeout(30)


def read_tickers(url: str, total: int, products: tuple[str, ...] = THREE) -> list[str]:
    """Subscribe to tickers only and read `total` ticker frames verbatim."""
    with open_client(url) as ws:
        subscribe(ws, products, ["ticker"])
        return [recv_text(ws) for _ in range(total)]


def test_tickers_are_exact_well_formed_and_increasing() -> None:
    count = 400
    config = SimulatorConfig(products=THREE, rate=0, count=count, seed=5)
    with SimulatorThread(config) as sim:
        frames = read_tickers(sim.url, (count + 1) * len(THREE))
        assert sim.wait_until(lambda s: s.done(), timeout=5)
        sent = sim.sent_tickers()
    by_product: dict[str, list[str]] = defaultdict(list)
    for frame in frames:
        assert frame.startswith('{"type":"ticker",') and " " not in frame
        by_product[json.loads(frame)["product_id"]].append(frame)
    # What the client read is byte for byte what the server says it sent.
    assert {p: [f.encode() for f in fs] for p, fs in by_product.items()} == {
        p: fs for p, fs in sent.items() if fs
    }
    times: set[int] = set()
    for product, texts in by_product.items():
        messages = [json.loads(t) for t in texts]
        snapshot, trades = messages[0], messages[1:]
        assert tuple(snapshot) == SNAPSHOT_KEYS and is_snapshot(snapshot)
        assert len(trades) == count
        for message in trades:
            assert tuple(message) == TICKER_KEYS
            assert message["product_id"] == product
            for key in (*TICKER_KEYS[3:13], "last_size"):
                assert isinstance(message[key], str) and DECIMAL.match(message[key])
            assert TIME.match(message["time"])
            times.add(len(message["time"].partition(".")[2]) - 1)  # fraction digits
        sequences = [m["sequence"] for m in messages]
        assert all(s > 2**31 for s in sequences)
        assert all(a < b for a, b in itertools.pairwise(sequences))
        trade_ids = [m["trade_id"] for m in trades]
        assert all(t > 2**31 for t in trade_ids)
        assert all(a < b for a, b in itertools.pairwise(trade_ids))
    assert {6, 8, 9} <= times and times & {0, 1, 2, 3}, times  # micro, 8, nano, millis


def test_products_take_turns() -> None:
    config = SimulatorConfig(products=THREE, rate=0, count=3, snapshot=False, seed=1)
    with SimulatorThread(config) as sim:
        frames = read_tickers(sim.url, 9)
    assert [json.loads(f)["product_id"] for f in frames] == list(THREE) * 3


def test_snapshot_options() -> None:
    config = SimulatorConfig(products=("ETH-BTC",), rate=0, count=2, snapshot_without_sequence=True)
    with SimulatorThread(config) as sim:
        first = json.loads(read_tickers(sim.url, 1, ("ETH-BTC",))[0])
    assert tuple(first) == tuple(k for k in SNAPSHOT_KEYS if k != "sequence")
    config = SimulatorConfig(products=("ETH-BTC",), rate=0, count=2, snapshot=False)
    with SimulatorThread(config) as sim:
        first = json.loads(read_tickers(sim.url, 1, ("ETH-BTC",))[0])
    assert tuple(first) == TICKER_KEYS


def test_rate_paces_each_product() -> None:
    config = SimulatorConfig(products=("BTC-USD", "ETH-BTC"), rate=20, snapshot=False, seed=1)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD", "ETH-BTC"], ["ticker"])
        frames = collect(ws, 1.0)
    per_product: dict[str, int] = defaultdict(int)
    for message in tickers(frames):
        per_product[message["product_id"]] += 1
    assert all(14 <= n <= 26 for n in per_product.values()), per_product


def test_count_then_heartbeats_once_per_second() -> None:
    config = SimulatorConfig(products=THREE, rate=0, count=30, seed=2)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(
            ws, THREE, ["ticker", {"name": "heartbeat", "product_ids": ["ETH-BTC", "BTC-EUR"]}]
        )
        arrivals = [(t, json.loads(frame)) for t, frame in collect_timed(ws, 2.4)]
        assert sim.done()
        assert ws.close_code is None  # still open after `count`
    trades = [m for _, m in arrivals if m["type"] == "ticker" and not is_snapshot(m)]
    assert len(trades) == 30 * 3
    beats = [(t, m) for t, m in arrivals if m["type"] == "heartbeat"]
    assert sorted(m["product_id"] for _, m in beats) == ["BTC-EUR", "BTC-EUR", "ETH-BTC", "ETH-BTC"]
    assert [round(t) for t, m in beats if m["product_id"] == "ETH-BTC"] == [1, 2]
    last_trade = {m["product_id"]: m for m in trades}
    for _, beat in beats:
        assert list(beat) == ["type", "last_trade_id", "product_id", "sequence", "time"]
        assert beat["sequence"] == last_trade[beat["product_id"]]["sequence"]
        assert beat["last_trade_id"] == last_trade[beat["product_id"]]["trade_id"]
        assert TIME.match(beat["time"])


def test_same_seed_same_stream_apart_from_time() -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        config = SimulatorConfig(products=THREE, rate=0, count=50, seed=seed)
        with SimulatorThread(config) as sim:
            messages = [json.loads(f) for f in read_tickers(sim.url, 51 * 3)]
        for message in messages:
            message.pop("time", None)
        return messages

    first = run(42)
    assert run(42) == first
    assert run(43) != first


def test_reconnect_continues_without_repeats() -> None:
    # Paced, so the first client does not get everything into its socket buffer.
    config = SimulatorConfig(products=("BTC-USD",), rate=400, seed=3)
    with SimulatorThread(config) as sim:
        one = tickers(read_tickers(sim.url, 21, ("BTC-USD",)))
        two = tickers(read_tickers(sim.url, 21, ("BTC-USD",)))
    assert two[0]["sequence"] > one[-1]["sequence"]  # the new snapshot included
    assert two[1]["trade_id"] > one[-1]["trade_id"]


def test_slow_client_is_not_flooded() -> None:
    # rate=0 but the client never reads: send() must wait on the socket rather
    # than buffer without bound, so the sent count stops growing.
    config = SimulatorConfig(products=("BTC-USD",), rate=0, record=False)
    with SimulatorThread(config) as sim, open_client(sim.url, max_queue=4) as ws:
        subscribe(ws, ["BTC-USD"], ["ticker"])
        time.sleep(0.7)
        early = sim.ticker_counts()["BTC-USD"]
        time.sleep(0.5)
        late = sim.ticker_counts()["BTC-USD"]
        assert early > 0
        assert late == early
        assert json.loads(recv_text(ws))["type"] == "ticker"  # and it still flows


def test_concurrent_clients_each_get_every_tick() -> None:
    # Like Coinbase, the feed broadcasts: a second connection gets the same
    # ticks (same bytes, same sequence) from the moment it subscribed.
    count = 60
    config = SimulatorConfig(products=("BTC-USD",), rate=200, count=count, snapshot=False, seed=8)
    with SimulatorThread(config) as sim, open_client(sim.url) as one, open_client(sim.url) as two:
        subscribe(one, ["BTC-USD"], ["ticker"])
        subscribe(two, ["BTC-USD"], ["ticker"])
        assert sim.wait_until(lambda s: s.done(), timeout=5)
        first, second = collect(one, 0.3), collect(two, 0.3)
        sent = sim.sent_tickers()["BTC-USD"]
    assert [f.encode() for f in first] == sent and len(sent) == count  # generated once
    assert len(second) >= count - 10
    assert second == first[-len(second) :]


def test_second_subscribe_adds_products_with_their_snapshot() -> None:
    config = SimulatorConfig(products=THREE, rate=50, seed=8)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD"], ["ticker"])
        ws.send(
            json.dumps({"type": "subscribe", "product_ids": ["ETH-BTC"], "channels": ["ticker"]})
        )
        messages = [json.loads(frame) for frame in collect(ws, 0.5)]
    ack = next(m for m in messages if m["type"] == "subscriptions")
    assert set(ack["channels"][0]["product_ids"]) == {"BTC-USD", "ETH-BTC"}
    eth = [m for m in messages if m.get("product_id") == "ETH-BTC"]
    assert eth and is_snapshot(eth[0]) and not is_snapshot(eth[-1])
