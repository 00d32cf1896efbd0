"""Unit tests of trade batches, the trade history's pages and the REST token bucket (no sockets)."""

from __future__ import annotations

import itertools
import json
import re
from decimal import Decimal

import pytest

from simulator import MATCH_KEYS, REST_KEYS, SimulatorConfig, Trade
from simulator.__main__ import build_parser, config_from_args
from simulator.frames import ProductState
from simulator.rest import TokenBucket
from simulator.trades import TradeHistory, rest_decimal

from .helpers import DECIMAL, TIME

NOW = 1_790_000_000_123_456_789
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
OPPOSITE = {"buy": "sell", "sell": "buy"}


def batches(state: ProductState, n: int) -> list[tuple[list[Trade], dict[str, object]]]:
    out = []
    for _ in range(n):
        trades, ticker = state.next_batch(NOW)
        out.append((trades, json.loads(ticker)))
    return out


def test_each_ticker_is_the_last_trade_of_its_batch() -> None:
    state = ProductState("ETH-BTC", seed=3)
    first = state.last_trade  # the trade before the start
    made = batches(state, 3000)
    trades = [first] + [t for batch, _ in made for t in batch]
    ids = [t.trade_id for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "trade ids +1 per trade"
    sequences = [t.sequence for t in trades]
    assert all(a < b for a, b in itertools.pairwise(sequences))
    sizes = [len(batch) for batch, _ in made]
    assert set(sizes) == {1, 2, 3, 4} and sizes.count(1) > len(sizes) / 2
    for batch, ticker in made:
        last = batch[-1]
        assert ticker["trade_id"] == last.trade_id and ticker["price"] == last.price
        assert ticker["time"] == last.time and ticker["last_size"] == last.size
        assert ticker["sequence"] == last.sequence
        assert ticker["side"] == OPPOSITE[last.side]  # the taker's; trades carry the maker's
        assert {t.side for t in batch} == {last.side} and {t.time for t in batch} == {last.time}
        assert len({t.taker_order_id for t in batch}) == 1, "one taker order per batch"
        prices = [Decimal(t.price) for t in batch]
        # The taker walks the book: a buyer's fills get dearer, a seller's cheaper.
        assert prices == sorted(prices, reverse=ticker["side"] == "sell")
    makers = [t.maker_order_id for t in trades]
    assert len(set(makers)) == len(makers) and all(UUID.match(m) for m in makers)
    assert not set(makers) & {t.taker_order_id for t in trades}


def test_match_frame_has_coinbase_keys_and_types() -> None:
    state = ProductState("BTC-USD", seed=7)
    trade = state.next_batch(NOW)[0][-1]
    raw = trade.frame()
    assert raw.startswith(b'{"type":"match","trade_id":') and b" " not in raw
    message = json.loads(raw)
    assert tuple(message) == MATCH_KEYS and message == trade.match()
    assert isinstance(message["trade_id"], int) and message["trade_id"] > 2**31
    assert isinstance(message["sequence"], int) and message["sequence"] > 2**31
    assert DECIMAL.match(message["size"]) and DECIMAL.match(message["price"])
    assert TIME.match(message["time"]) and message["side"] in ("buy", "sell")
    assert json.loads(trade.frame("last_match")) == {**message, "type": "last_match"}
    rest = json.loads(trade.rest_text())
    assert tuple(rest) == REST_KEYS
    assert rest["price"] == rest_decimal(trade.price) and len(rest["price"].split(".")[1]) == 8
    assert Decimal(rest["price"]) == Decimal(trade.price)
    assert (rest["time"], rest["side"]) == (trade.time, trade.side)
    assert rest["trade_id"] == trade.trade_id


def test_rest_decimal_pads_never_cuts() -> None:
    assert rest_decimal("0.03712") == "0.03712000"
    assert rest_decimal("84140.83") == "84140.83000000"
    assert rest_decimal("0.00004104") == "0.00004104"
    assert rest_decimal("1.123456789") == "1.123456789"
    assert rest_decimal("25") == "25.00000000"


def test_tickers_still_walk_as_before_matches() -> None:
    # The fills draw from an RNG of their own: same seed, same ticker prices and ids.
    one, two = ProductState("BTC-USD", seed=9), ProductState("BTC-USD", seed=9)
    a = [json.loads(one.next_ticker(NOW)) for _ in range(200)]
    b = [json.loads(two.next_batch(NOW)[1]) for _ in range(200)]
    assert a == b
    other = ProductState("BTC-USD", seed=9)
    trades_a = [t for _ in range(50) for t in other.next_batch(NOW)[0]]
    again = ProductState("BTC-USD", seed=9)
    trades_b = [t for _ in range(50) for t in again.next_batch(NOW)[0]]
    assert trades_a == trades_b


def history_of(first: int, count: int, keep: int = 10_000) -> TradeHistory:
    state = ProductState("BTC-USD", seed=1)
    template = state.next_batch(NOW)[0][0]
    history = TradeHistory(keep)
    history.add([template._replace(trade_id=first + i) for i in range(count)])
    return history


def ids(trades: list[Trade]) -> list[int]:
    return [t.trade_id for t in trades]


def test_history_pages_like_coinbase() -> None:
    history = history_of(101, 100)  # ids 101..200
    assert ids(history.page(None, None, 5)) == [200, 199, 198, 197, 196]
    assert ids(history.page(None, 150, 3)) == [149, 148, 147]  # after: older than 150
    assert ids(history.page(150, None, 3)) == [153, 152, 151]  # before: newer than 150
    assert ids(history.page(None, 103, 1000)) == [102, 101]
    assert ids(history.page(198, None, 1000)) == [200, 199]
    assert history.page(None, 101, 10) == [] and history.page(200, None, 10) == []
    assert ids(history.page(None, 10_000, 2)) == [200, 199]
    assert ids(history.page(5, None, 2)) == [102, 101]
    assert ids(history.page(None, None, 1000)) == list(range(200, 100, -1))


def test_history_keeps_the_newest_and_stays_contiguous() -> None:
    history = history_of(1, 1000, keep=100)
    assert history.made == 1000
    assert ids(history.all()) == list(range(901, 1001))
    assert ids(history.page(None, 905, 10)) == [904, 903, 902, 901]
    assert ids(history.page(None, None, 1000))[-1] == 901
    with pytest.raises(ValueError, match="contiguous"):
        history.add([history.last()._replace(trade_id=1002)])


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(5, 3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.2  # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]
    now[0] = 10.0  # never more than the burst saved up
    assert sum(bucket.take() for _ in range(10)) == 3
    unlimited = TokenBucket(0, 1, clock=lambda: 0.0)
    assert all(unlimited.take() for _ in range(1000))


def test_trade_and_rest_flags_reach_the_config() -> None:
    args = build_parser().parse_args(
        ["--autostart", "--trade-history", "5000", "--rest-rate", "5", "--rest-burst", "7",
         "--rest-fault-share", "0.25", "--rest-faults", "html,server_error"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.trade_history, config.rest_rate, config.rest_burst) == (5000, 5.0, 7)
    assert config.autostart
    assert config.rest_fault_share == 0.25
    assert config.rest_fault_kinds == ("html", "server_error")
    defaults = config_from_args(build_parser().parse_args([]))
    assert (defaults.rest_rate, defaults.rest_burst, defaults.rest_fault_share) == (10.0, 15, 0.0)
    assert not defaults.autostart and defaults.trade_history == SimulatorConfig().trade_history
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--rest-faults", "html,teapot"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"trade_history": 0},
        {"rest_rate": -1},
        {"rest_burst": 0},
        {"rest_fault_share": 1.5},
        {"rest_fault_kinds": ("teapot",)},
        {"rest_fault_kinds": ()},
    ],
)
def test_config_rejects_nonsense_trade_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**kwargs)  # type: ignore[arg-type]
