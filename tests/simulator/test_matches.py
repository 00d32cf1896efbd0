"""The `matches` channel over real sockets: last_match, contiguous trade ids, tickers as the
last match of their batch, the trade record, and connection faults on matches."""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from typing import Any

import pytest

from simulator import MATCH_KEYS, SimulatorConfig, SimulatorThread

from .helpers import (
    DECIMAL,
    THREE,
    TIME,
    collect,
    messages_of,
    open_client,
    read_until_closed,
    recv_text,
    subscribe,
)

pytestmark = pytest.mark.timeout(30)
OPPOSITE = {"buy": "sell", "sell": "buy"}


def by_product(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        grouped[message["product_id"]].append(message)
    return grouped


def test_subscribe_sends_one_last_match_per_product_first() -> None:
    config = SimulatorConfig(products=THREE, rate=50, seed=1)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        answer = subscribe(ws, THREE, ["matches"])
        first = [json.loads(recv_text(ws)) for _ in range(3)]
        later = [json.loads(f) for f in collect(ws, 0.3)]
        made = sim.trades()
    assert answer["channels"] == [{"name": "matches", "product_ids": list(THREE)}]
    assert [m["type"] for m in first] == ["last_match"] * 3
    assert {m["product_id"] for m in first} == set(THREE)
    for message in first:
        assert tuple(message) == MATCH_KEYS
        # Nothing was traded before the subscription: the last match is the trade
        # made before the simulator started, the first of the record.
        assert message == made[message["product_id"]][0].match("last_match")
    assert later and {m["type"] for m in later} == {"match"}
    for message in later:
        assert tuple(message) == MATCH_KEYS
        assert DECIMAL.match(message["size"]) and DECIMAL.match(message["price"])
        assert TIME.match(message["time"]) and message["side"] in ("buy", "sell")
        assert isinstance(message["trade_id"], int) and message["trade_id"] > 2**31


def test_trade_ids_contiguous_and_each_ticker_is_the_last_match_of_its_batch() -> None:
    count = 300
    config = SimulatorConfig(products=THREE, rate=0, count=count, seed=5)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, THREE, ["ticker", "matches"])
        assert sim.wait_until(lambda s: s.done(), timeout=10)
        frames = collect(ws, 0.5)
        made = sim.trades()
        delivered = sim.delivered_trade_ids()
    messages = [json.loads(f) for f in frames]
    for product, stream in by_product(messages).items():
        matches = [m for m in stream if m["type"] in ("match", "last_match")]
        assert matches[0]["type"] == "last_match"
        ids = [m["trade_id"] for m in matches]
        assert ids == list(range(ids[0], ids[0] + len(ids))), "every trade, +1 each"
        # What the client read is byte for byte the record of every trade made.
        own = [f for f in frames if f'"product_id":"{product}"' in f and '"match"' in f]
        assert [f.encode() for f in own] == [t.frame() for t in made[product][1:]]
        assert delivered[product] == ids
        tickers = [m for m in stream if m["type"] == "ticker" and "trade_id" in m]
        assert len(tickers) == count
        steps = [b["trade_id"] - a["trade_id"] for a, b in itertools.pairwise(tickers)]
        assert max(steps) > 1 and min(steps) == 1, "the ticker skips trades of a batch"
        for index, message in enumerate(stream):
            if message["type"] != "ticker" or "trade_id" not in message:
                continue
            match = stream[index - 1]  # a batch's matches go out right before its ticker
            assert match["type"] == "match"
            assert (match["trade_id"], match["price"], match["time"], match["sequence"]) == (
                message["trade_id"], message["price"], message["time"], message["sequence"]
            )  # fmt: skip
            assert match["size"] == message["last_size"]
            assert match["side"] == OPPOSITE[message["side"]]


def test_a_later_subscriber_gets_the_newest_trade_then_the_next() -> None:
    config = SimulatorConfig(products=("BTC-USD",), rate=200, seed=2)
    with SimulatorThread(config) as sim, open_client(sim.url) as one:
        subscribe(one, ["BTC-USD"], ["matches"])
        collect(one, 0.3)  # trades flow
        with open_client(sim.url) as two:
            subscribe(two, ["BTC-USD"], ["matches"])
            messages = [json.loads(recv_text(two)) for _ in range(20)]
    assert messages[0]["type"] == "last_match" and messages[0]["trade_id"] > 0
    ids = [m["trade_id"] for m in messages]
    assert ids == list(range(ids[0], ids[0] + 20)), "no repeat, no gap after last_match"
    assert {m["type"] for m in messages[1:]} == {"match"}


def test_channels_are_separate() -> None:
    config = SimulatorConfig(products=("BTC-USD", "ETH-BTC"), rate=100, seed=3, snapshot=False)
    with (
        SimulatorThread(config) as sim,
        open_client(sim.url) as tick,
        open_client(sim.url) as match,
    ):
        subscribe(tick, ["BTC-USD"], ["ticker"])
        subscribe(match, ["ETH-BTC"], ["matches"])
        ticks = [json.loads(f) for f in collect(tick, 0.4)]
        matches = [json.loads(f) for f in collect(match, 0.4)]
    assert ticks and {(m["type"], m["product_id"]) for m in ticks} == {("ticker", "BTC-USD")}
    assert {m["type"] for m in matches} == {"last_match", "match"}
    assert {m["product_id"] for m in matches} == {"ETH-BTC"}


def test_unsubscribing_from_matches_stops_them() -> None:
    config = SimulatorConfig(products=("BTC-USD",), rate=100, seed=4, snapshot=False)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD"], ["ticker", "matches"])
        ws.send(json.dumps({"type": "unsubscribe", "channels": ["matches"]}))
        deadline = time.monotonic() + 5
        while json.loads(recv_text(ws, max(0.01, deadline - time.monotonic())))["type"] != (
            "subscriptions"
        ):
            pass
        after = [json.loads(f) for f in collect(ws, 0.3)]
    assert after and {m["type"] for m in after} == {"ticker"}


def test_trades_made_while_down_are_recorded_but_not_delivered() -> None:
    config = SimulatorConfig(products=("BTC-USD",), rate=200, seed=7, drop_one_every=0.5)
    received: list[str] = []
    with SimulatorThread(config) as sim:
        for _ in range(2):
            with open_client(sim.url) as ws:
                subscribe(ws, ["BTC-USD"], ["matches"])
                received += read_until_closed(ws, timeout=3)
            time.sleep(0.3)  # both down: the market trades on
        made = [t.trade_id for t in sim.trades()["BTC-USD"]]
        delivered = sim.delivered_trade_ids()["BTC-USD"]
        counts = sim.trade_counts()["BTC-USD"]
    assert made == list(range(made[0], made[0] + len(made))) and counts == len(made)
    got = sorted({m["trade_id"] for m in messages_of(received, "match")}
                 | {m["trade_id"] for m in messages_of(received, "last_match")})  # fmt: skip
    assert delivered == got  # clean closes: what was written arrived
    missed = set(made) - set(got)
    assert len(missed) > 40, "trades made while no connection was up were missed"


def test_connection_faults_apply_to_matches() -> None:
    config = SimulatorConfig(products=THREE, rate=0, seed=4, drop_after_messages=10)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, THREE, ["matches"])
        frames = read_until_closed(ws)
        assert ws.close_code == 1000
    assert len(frames) == 10  # three last_match and seven matches count as messages
    assert [json.loads(f)["type"] for f in frames[:3]] == ["last_match"] * 3
    config = SimulatorConfig(products=("BTC-USD",), rate=0, count=6, malformed_every=2, seed=9)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD"], ["matches"])
        assert sim.wait_until(lambda s: s.done(), timeout=5)
        frames = collect(ws, 0.3)
        malformed = sim.sent_malformed()
        made = sim.trades()["BTC-USD"]
    assert [f.encode() for f in frames[1::2]] == malformed
    real = [json.loads(f) for f in frames[0::2]]
    assert [m["trade_id"] for m in real] == [t.trade_id for t in made]


def test_stall_holds_matches_too() -> None:
    config = SimulatorConfig(
        products=("BTC-USD",), rate=100, seed=3, stall_after_messages=5, stall_seconds=0.8
    )
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD"], ["matches"])
        started = time.monotonic()
        first = [recv_text(ws) for _ in range(5)]
        sixth = recv_text(ws, timeout=5)
        waited = time.monotonic() - started
    assert waited > 0.7
    ids = [json.loads(f)["trade_id"] for f in [*first, sixth]]
    assert ids == sorted(ids) and len(set(ids)) == 6
