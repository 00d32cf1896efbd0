"""The frame router and the sequence watch, property-based."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from producer.router import (
    REPEAT,
    Control,
    FeedError,
    Match,
    RecentFrames,
    Reject,
    SequenceWatch,
    Tick,
    route,
)
from shared.partitions import PartitionMap
from tests.factories import patched, snapshot, ticker

PRODUCTS = PartitionMap(["ETH-BTC", "BTC-USD", "BTC-EUR"])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(st.binary(max_size=200), st.booleans())
def test_any_bytes_route_somewhere_without_raising(frame: bytes, matches: bool) -> None:
    routed = route(frame, PRODUCTS, matches)
    assert isinstance(routed, Tick | Match | Control | FeedError | Reject)


@given(json_values)
def test_any_json_type_routes_without_raising_with_the_tape_on(kind: object) -> None:
    routed = route(
        orjson.dumps({"type": kind, "product_id": "BTC-USD", "trade_id": 1}), PRODUCTS, True
    )
    assert isinstance(routed, Match) == (kind in ("match", "last_match"))


def test_matches_are_trades_with_the_tape_on_and_control_frames_without() -> None:
    frame = b'{"type":"match","trade_id":71234568,"product_id":"BTC-EUR","sequence":9}'
    assert route(frame, PRODUCTS, matches=True) == Match("match", "BTC-EUR", 2, 71234568)
    assert route(frame, PRODUCTS) == Control("match", "BTC-EUR")
    last = frame.replace(b'"match"', b'"last_match"')
    assert route(last, PRODUCTS, True) == Match("last_match", "BTC-EUR", 2, 71234568)


def test_matches_that_cannot_be_routed_are_rejected_with_reasons() -> None:
    cases = {
        b'{"type":"match","trade_id":1}': "match without product_id",
        b'{"type":"match","trade_id":1,"product_id":"DOGE-XYZ"}': "unknown product",
        b'{"type":"last_match","product_id":"BTC-USD"}': "last_match trade_id is not",
        b'{"type":"match","trade_id":"1","product_id":"BTC-USD"}': "trade_id is not",
        b'{"type":"match","trade_id":-1,"product_id":"BTC-USD"}': "trade_id is not",
        b'{"type":"match","trade_id":1.0,"product_id":"BTC-USD"}': "trade_id is not",
        b'{"type":"match","trade_id":true,"product_id":"BTC-USD"}': "trade_id is not",
    }
    for frame, reason in cases.items():
        routed = route(frame, PRODUCTS, matches=True)
        assert isinstance(routed, Reject) and reason in routed.reason, frame


@given(json_values)
def test_only_tickers_of_configured_products_become_ticks(value: object) -> None:
    routed = route(orjson.dumps(value), PRODUCTS)
    if isinstance(routed, Tick):
        assert isinstance(value, dict) and value["type"] == "ticker"
        assert PRODUCTS.partition(routed.product) == routed.partition


@given(st.sampled_from(PRODUCTS.products), st.integers(1, 2**62), st.integers(0, 2**62))
def test_tickers_route_to_their_fixed_partition(product: str, sequence: int, trade: int) -> None:
    routed = route(ticker(product, sequence, trade), PRODUCTS)
    assert routed == Tick(product, PRODUCTS.products.index(product), sequence, trade)


def test_frames_that_cannot_be_routed_are_rejected_with_reasons() -> None:
    cases = {
        b"{not json": "not JSON",
        b"[1]": "not a JSON object",
        b'{"type":"ticker","price":"1"}': "without product_id",
        ticker("DOGE-XYZ", 1): "unknown product",
        patched(ticker("BTC-USD", 1), trade_id="7"): "trade_id",
    }
    for frame, reason in cases.items():
        routed = route(frame, PRODUCTS)
        assert isinstance(routed, Reject) and reason in routed.reason


def test_a_valid_ticker_is_a_tick_whatever_its_size() -> None:
    # An extra field of 2 MiB: the feed reads it (FEED_MAX_FRAME_BYTES) and it is published.
    big = ticker("BTC-USD", 7, 14, memo="x" * 2 * 1024 * 1024)
    assert route(big, PRODUCTS) == Tick("BTC-USD", 1, 7, 14)


def test_control_frames_and_errors_are_not_ticks() -> None:
    assert route(b'{"type":"heartbeat","product_id":"BTC-USD"}', PRODUCTS) == Control(
        "heartbeat", "BTC-USD"
    )
    assert route(b'{"type":"subscriptions","channels":[]}', PRODUCTS) == Control("subscriptions")
    assert route(b'{"type":"l2update"}', PRODUCTS) == Control("l2update")
    assert isinstance(route(b'{"type":"error","message":"x"}', PRODUCTS), FeedError)
    assert route(snapshot("ETH-BTC"), PRODUCTS) == Tick("ETH-BTC", 0, None, None)


@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=60))
def test_watch_publishes_every_distinct_sequence_once_in_arrival_order(
    sequences: list[int],
) -> None:
    watch = SequenceWatch()
    published = [s for s in sequences if watch.check(Tick("BTC-USD", 1, s, None)).publish]
    assert published == list(dict.fromkeys(sequences))  # first arrivals, whatever the order


def test_out_of_order_jumps_and_resets_are_published_and_classified() -> None:
    watch = SequenceWatch()
    base = 136_967_652_357  # a real BTC-USD sequence
    arrivals = [
        (base, None),
        (base + 5, None),
        (base + 3, "out_of_order"),  # a late tick: real, published
        (base + 10, None),
        (900_000_000_000_000, "forward_jump"),  # a stray frame far ahead
        (base + 11, "backward_jump"),  # ... does not hold back the ticks after it
        (base + 12, None),
        (7, "backward_jump"),  # a reset after maintenance
        (8, None),
    ]
    for sequence, kind in arrivals:
        verdict = watch.check(Tick("BTC-USD", 1, sequence, None))
        assert verdict.publish, sequence
        assert verdict.anomaly == kind, sequence
    assert watch.check(Tick("BTC-USD", 1, base + 3, None)) is REPEAT  # exact repeat


def test_watch_forgets_the_oldest_sequences_beyond_its_memory() -> None:
    watch = SequenceWatch(remembered=3)
    for sequence in (1, 2, 3, 4):
        assert watch.check(Tick("ETH-BTC", 0, sequence, None)).publish
    assert not watch.check(Tick("ETH-BTC", 0, 4, None)).publish
    assert watch.check(Tick("ETH-BTC", 0, 1, None)).publish  # forgotten: the table's key absorbs it
    assert len(watch.recent["ETH-BTC"]) == 3


def test_ticks_without_sequence_are_always_published() -> None:
    watch = SequenceWatch()
    assert watch.check(Tick("ETH-BTC", 0, None, None)).publish
    assert watch.check(Tick("ETH-BTC", 0, None, None)).publish


@given(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=40))
def test_watch_counts_exactly_the_skipped_trade_ids(steps: list[int]) -> None:
    watch = SequenceWatch()
    trade_id, missed = 1000, 0
    watch.check(Tick("ETH-BTC", 0, 1, trade_id))
    for number, step in enumerate(steps, start=2):
        trade_id += step
        missed += watch.check(Tick("ETH-BTC", 0, number, trade_id)).trade_gap
    assert missed == sum(step - 1 for step in steps)


def test_watch_keeps_products_apart() -> None:
    watch = SequenceWatch()
    assert watch.check(Tick("BTC-USD", 1, 100, 1)).publish
    assert watch.check(Tick("ETH-BTC", 0, 5, 1)).publish
    assert not watch.check(Tick("BTC-USD", 1, 100, 2)).publish


def test_recent_frames_know_the_last_published_frames_by_their_bytes() -> None:
    recent = RecentFrames(capacity=2)
    recent.add(b'{"sequence":1}', "BTC-USD")
    recent.add(b'{"sequence":2}', "ETH-BTC")
    assert recent.product(bytes(bytearray(b'{"sequence":1}'))) == "BTC-USD"  # equal, not same
    assert recent.product(b'{"sequence": 1}') is None  # other bytes: the sequence check decides
    recent.add(b'{"sequence":3}', "BTC-USD")
    assert recent.product(b'{"sequence":1}') is None  # the oldest is forgotten
    assert recent.product(b'{"sequence":3}') == "BTC-USD" and len(recent) == 2


def test_recent_frames_of_capacity_zero_remember_nothing() -> None:
    recent = RecentFrames(capacity=0)
    recent.add(b'{"sequence":1}', "BTC-USD")
    assert recent.product(b'{"sequence":1}') is None and len(recent) == 0
