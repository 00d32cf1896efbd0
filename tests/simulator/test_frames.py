"""Unit tests of frame generation, malformed frames and subscription parsing (no sockets)."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator import SNAPSHOT_KEYS, TICKER_KEYS, SimulatorConfig
from simulator.faults import MALFORMED_KINDS, malformed_frame
from simulator.frames import ProductState, format_time
from simulator.subscriptions import SubscribeError, parse_subscribe, remove

from .helpers import DECIMAL, THREE, TIME

NOW = 1_790_000_000_123_456_789  # 2026-09-21T...Z


def test_ticker_has_coinbase_key_order_and_types() -> None:
    state = ProductState("BTC-USD", seed=7)
    raw = state.next_ticker(time.time_ns())
    assert raw.startswith(b'{"type":"ticker","sequence":') and b" " not in raw
    message = json.loads(raw)
    assert tuple(message) == TICKER_KEYS
    assert isinstance(message["sequence"], int) and message["sequence"] > 2**31
    assert isinstance(message["trade_id"], int) and message["trade_id"] > 2**31
    for key in (*TICKER_KEYS[3:13], "last_size"):
        assert DECIMAL.match(message[key]), (key, message[key])
    assert len(message["price"].split(".")[1]) == 2  # BTC-USD ticks are cents
    assert len(message["last_size"].split(".")[1]) == 8
    assert message["side"] in ("buy", "sell")
    assert TIME.match(message["time"])


def test_snapshot_has_no_trade_fields() -> None:
    state = ProductState("ETH-BTC", seed=7)
    with_sequence = json.loads(state.snapshot())
    assert tuple(with_sequence) == SNAPSHOT_KEYS
    assert len(with_sequence["price"].split(".")[1]) == 5  # ETH-BTC like "0.03712"
    without = json.loads(state.snapshot(with_sequence=False))
    assert tuple(without) == tuple(k for k in SNAPSHOT_KEYS if k != "sequence")


def test_prices_walk_and_ids_increase() -> None:
    state = ProductState("ETH-BTC", seed=3)
    messages = [json.loads(state.next_ticker(NOW)) for _ in range(2000)]
    prices = {m["price"] for m in messages}
    assert len(prices) > 10, "the price should move"
    for before, after in itertools.pairwise(messages):
        assert 1 <= after["sequence"] - before["sequence"] <= 5
        assert after["trade_id"] > before["trade_id"]
        assert float(after["low_24h"]) <= float(after["price"]) <= float(after["high_24h"])
        assert float(after["best_bid"]) <= float(after["price"]) <= float(after["best_ask"])
    steps = [b["trade_id"] - a["trade_id"] for a, b in itertools.pairwise(messages)]
    assert steps.count(1) > len(steps) / 2 and max(steps) > 1


def test_same_seed_same_walk_unknown_product_too() -> None:
    one = ProductState("FOO-BAR", seed=11)
    two = ProductState("FOO-BAR", seed=11)
    assert [one.next_ticker(NOW) for _ in range(50)] == [two.next_ticker(NOW) for _ in range(50)]
    other = ProductState("FOO-BAR", seed=12)
    assert one.next_ticker(NOW) != other.next_ticker(NOW)


def test_time_styles() -> None:
    assert format_time(NOW, 0.1).endswith(".123456Z")
    assert format_time(NOW, 0.85).endswith(".123456789Z")
    assert format_time(NOW, 0.9).endswith(".12345678Z")
    assert format_time(NOW, 0.99).endswith(".123Z")
    assert format_time(1_790_000_000_900_000_000, 0.99).endswith(".9Z")
    assert format_time(1_790_000_000_000_000_000, 0.99).endswith(":20Z")


@given(ns=st.integers(0, 4_000_000_000 * 10**9), style=st.floats(0, 0.999999))
def test_time_round_trips_to_the_microsecond(ns: int, style: float) -> None:
    text = format_time(ns, style)
    assert TIME.match(text)
    head, _, fraction = text[:-1].partition(".")
    parsed = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    micros = int((fraction + "000000")[:6])
    assert int(parsed.timestamp()) == ns // 10**9
    expected = (ns % 10**9) // 1000
    assert micros == expected or (style >= 0.94 and micros == expected // 1000 * 1000)


def test_malformed_kinds_cycle() -> None:
    sample = ProductState("BTC-USD", seed=1).peek_ticker(NOW)
    frames = [malformed_frame(i, sample) for i in range(len(MALFORMED_KINDS) + 1)]
    assert frames[0] == frames[-1]
    not_json, truncated, no_product, unknown, array, empty = frames[:6]
    for frame in (not_json, truncated):
        with pytest.raises(ValueError):
            json.loads(frame)
    assert "product_id" not in json.loads(no_product)
    assert json.loads(unknown)["product_id"] == "DOGE-XYZ"
    assert isinstance(json.loads(array), list)
    assert empty == b""


KNOWN = THREE


def test_parse_subscribe_forms() -> None:
    channels = parse_subscribe(
        {
            "type": "subscribe",
            "product_ids": ["ETH-BTC", "BTC-USD"],
            "channels": ["ticker", {"name": "heartbeat", "product_ids": ["BTC-EUR"]}],
        },
        KNOWN,
    )
    assert channels == {"ticker": ["ETH-BTC", "BTC-USD"], "heartbeat": ["BTC-EUR"]}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"product_ids": ["XRP-JPY"], "channels": ["ticker"]}, "XRP-JPY is not a valid product"),
        ({"product_ids": ["BTC-USD"], "channels": ["level2"]}, "require authentication"),
        ({"product_ids": ["BTC-USD"], "channels": ["nope"]}, "nope is not a valid channel"),
        ({"product_ids": ["BTC-USD"]}, "channels"),
        ({"product_ids": [], "channels": ["ticker"]}, "No product ids"),
        ({"product_ids": ["BTC-USD"], "channels": ["ticker"], "timestamp": 17}, "timestamp"),
    ],
)
def test_parse_subscribe_errors(message: dict[str, object], reason: str) -> None:
    with pytest.raises(SubscribeError, match=reason):
        parse_subscribe({"type": "subscribe", **message}, KNOWN)


def test_remove_subscriptions() -> None:
    current = {"ticker": ["ETH-BTC", "BTC-USD"], "heartbeat": ["ETH-BTC"]}
    assert remove(current, {"product_ids": ["ETH-BTC"], "channels": ["ticker"]}) == {
        "ticker": ["BTC-USD"],
        "heartbeat": ["ETH-BTC"],
    }
    assert remove(current, {"channels": [{"name": "heartbeat"}]}) == {
        "ticker": ["ETH-BTC", "BTC-USD"]
    }
    assert remove(current, {"product_ids": ["ETH-BTC"]}) == {"ticker": ["BTC-USD"]}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"products": ()},
        {"products": ("btc-usd",)},
        {"products": ('BTC-USD"',)},
        {"rate": -1},
        {"drop_code": 1006},
        {"drop_code": "close"},
        {"malformed_every": 0},
        {"count": -1},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**kwargs)  # type: ignore[arg-type]
