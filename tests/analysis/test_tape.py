"""The trade tape over HTTP against real MariaDB: Coinbase's trade pages and cursors,
completeness by trade id, and candles from trades where the tape covers the bucket; every
answer checked against dataset.py's brute-force oracle."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest

from tests.analysis import dataset
from tests.analysis.conftest import Analysis
from tests.analysis.dataset import T0, TapeTrade, iso, unix

M = timedelta(minutes=1)


def shown(trade: TapeTrade) -> dict[str, Any]:
    return {
        "time": iso(trade.time),
        "trade_id": trade.trade_id,
        "price": trade.price,
        "size": trade.size,
        "side": trade.side,
    }


def newest_first(analysis: Analysis, product: str) -> list[dict[str, Any]]:
    mine = sorted(
        (t for t in analysis.trades if t.product == product),
        key=lambda t: t.trade_id,
        reverse=True,
    )
    return [shown(t) for t in mine]


def test_latest_page_is_newest_first_with_1000_by_default(analysis: Analysis) -> None:
    expected = newest_first(analysis, "BTC-EUR")
    assert len(expected) > 1000
    reply = analysis.get("/products/BTC-EUR/trades")
    assert reply.status == 200
    assert reply.json() == expected[:1000]
    assert reply.headers["cb-before"] == str(expected[0]["trade_id"])
    assert reply.headers["cb-after"] == str(expected[999]["trade_id"])
    # Decimals as stored (scale zeros trimmed), never through a float.
    assert all(isinstance(t["price"], str) and isinstance(t["size"], str) for t in reply.json())


def test_after_pages_back_through_history_and_before_pages_forward(analysis: Analysis) -> None:
    expected = newest_first(analysis, "BTC-EUR")
    got: list[dict[str, Any]] = []
    path, pages = "/products/BTC-EUR/trades?limit=97", 0
    while True:
        reply = analysis.get(path)
        assert reply.status == 200
        page = reply.json()
        if not page:
            assert "cb-after" not in reply.headers and "cb-before" not in reply.headers
            break
        assert reply.headers["cb-before"] == str(page[0]["trade_id"])
        assert reply.headers["cb-after"] == str(page[-1]["trade_id"])
        assert len(page) <= 97
        got += page
        pages += 1
        path = f"/products/BTC-EUR/trades?limit=97&after={reply.headers['cb-after']}"
    assert got == expected
    assert pages == -(-len(expected) // 97)

    # Forward: from before=0 (the oldest page), each CB-BEFORE names the next newer page.
    forward: list[dict[str, Any]] = []
    path = "/products/BTC-EUR/trades?limit=250&before=0"
    while True:
        reply = analysis.get(path)
        page = reply.json()
        if not page:
            break
        assert page == sorted(page, key=lambda t: t["trade_id"], reverse=True)  # newest first
        forward = page + forward
        path = f"/products/BTC-EUR/trades?limit=250&before={reply.headers['cb-before']}"
    assert forward == expected


def test_cursor_pages_are_adjacent_to_the_cursor(analysis: Analysis) -> None:
    ids = sorted(t.trade_id for t in analysis.trades if t.product == "BTC-EUR")
    middle = ids[len(ids) // 2]
    newer = analysis.get(f"/products/BTC-EUR/trades?before={middle}&limit=3").json()
    assert [t["trade_id"] for t in newer] == sorted(i for i in ids if i > middle)[:3][::-1]
    older = analysis.get(f"/products/BTC-EUR/trades?after={middle}&limit=3").json()
    assert [t["trade_id"] for t in older] == sorted(i for i in ids if i < middle)[-3:][::-1]
    # Across a hole: the page just older than the first id after minutes 100-102 skips them.
    reply = analysis.get(f"/products/BTC-EUR/trades?after={ids[0]}")
    assert (reply.status, reply.json()) == (200, [])
    assert len(analysis.get("/products/BTC-EUR/trades?limit=1000&after=10").json()) == 0


def test_trades_bad_parameters_and_unknown_product(analysis: Analysis) -> None:
    cases = {
        "/products/BTC-EUR/trades?limit=0": (422, "limit:"),
        "/products/BTC-EUR/trades?limit=1001": (422, "limit:"),
        "/products/BTC-EUR/trades?before=x": (422, "before:"),
        "/products/BTC-EUR/trades?after=-1": (422, "after:"),
        "/products/BTC-EUR/trades?before=1&after=9": (400, "give before or after, not both"),
        "/products/NOPE-USD/trades": (404, "unknown product 'NOPE-USD'"),
    }
    for path, (status, message) in cases.items():
        reply = analysis.get(path)
        assert (path, reply.status) == (path, status)
        assert message in reply.json()["message"] and "\n" not in reply.json()["message"]
    assert len(analysis.get("/products/BTC-USD/trades?limit=1000").json()) == 1000


WINDOWS = {
    "the tape starts inside": (T0 - 10 * M, T0 + 30 * M),
    "complete, with trades from REST": (T0 + 10 * M, T0 + 90 * M),
    "interior holes": (T0 + 90 * M, T0 + 210 * M),
    "the tape stops inside": (T0 + 210 * M, T0 + 4 * 60 * M + 30 * M),
    "starts inside a hole": (T0 + 101 * M, T0 + 120 * M),
    "ends inside a hole": (T0 + 60 * M, T0 + 101 * M),
    "inside a hole, no trade stored": (T0 + 100 * M + timedelta(seconds=30), T0 + 101 * M),
    "before the tape": (T0 - 120 * M, T0 - 60 * M),
    "between the history and the live tape": (T0 + 5 * 60 * M, T0 + 6 * 60 * M),
}


def completeness_path(product: str, start: datetime, end: datetime, extra: str = "") -> str:
    return (
        f"/products/{product}/completeness?start={quote(iso(start))}&end={quote(iso(end))}" + extra
    )


@pytest.mark.parametrize("name", list(WINDOWS))
def test_completeness_by_trade_id(analysis: Analysis, name: str) -> None:
    start, end = WINDOWS[name]
    reply = analysis.get(completeness_path("BTC-EUR", start, end))
    assert reply.status == 200
    expected = dataset.completeness(analysis.trades, "BTC-EUR", start, end)
    assert reply.json() == expected
    # Spelled out, so the oracle's cases are the ones intended.
    holes, missing = expected["holes"], expected["missing"]
    assert isinstance(holes, list) and isinstance(missing, int)
    if name.startswith("complete") or name == "the tape starts inside":
        assert (missing, holes) == (0, [])
    if name.startswith("complete"):
        assert expected["repaired"] and expected["first_trade_id"]
    if name == "interior holes":
        assert len(holes) == 3 and missing == sum(b - a + 1 for a, b in holes)
    if name == "starts inside a hole":
        assert holes[0][0] == expected["first_trade_id"]
    if name == "ends inside a hole":
        assert holes[-1][1] == expected["last_trade_id"]
    if name == "inside a hole, no trade stored":
        assert holes == [[expected["first_trade_id"], expected["last_trade_id"]]]
    if name == "the tape stops inside":  # ... and starts again months later: one edge hole
        assert holes == [[holes[0][0], expected["last_trade_id"]]] and missing > 290_000
    if name == "before the tape":
        assert expected["first_trade_id"] is None and missing == 0


def test_completeness_default_window_limit_and_bad_parameters(analysis: Analysis) -> None:
    for product in dataset.PRODUCTS:
        reply = analysis.get(f"/products/{product}/completeness")
        start = analysis.now - timedelta(hours=24)
        assert reply.json() == dataset.completeness(
            analysis.trades, product, start, analysis.now + M
        ), product
    assert analysis.get("/products/BTC-USD/completeness").json()["missing"] == 0
    assert analysis.get("/products/ETH-BTC/completeness").json()["missing"] == 5

    start, end = WINDOWS["interior holes"]
    capped = analysis.get(completeness_path("BTC-EUR", start, end, "&limit=1")).json()
    full = dataset.completeness(analysis.trades, "BTC-EUR", start, end)
    assert capped == {**full, "holes": full["holes"][:1]}  # type: ignore[index]
    a, b = capped["holes"][0]
    assert b - a + 1 < capped["missing"]  # the sign that more holes follow

    week = f"start={iso(T0)}&end={iso(T0 + timedelta(days=8))}"
    for query, status in [
        (f"start={iso(T0)}&end={iso(T0)}", 400),
        (week, 400),
        ("start=soon", 400),
        ("limit=0", 422),
        ("limit=1001", 422),
    ]:
        reply = analysis.get(f"/products/BTC-EUR/completeness?{query}")
        assert (query, reply.status) == (query, status)
        assert "\n" not in reply.json()["message"]
    assert analysis.get("/products/NOPE-USD/completeness").status == 404


def test_candles_come_from_trades_where_the_tape_covers_the_bucket(analysis: Analysis) -> None:
    start, end = T0, T0 + 5 * 60 * M
    reply = analysis.get(
        f"/products/BTC-EUR/candles?granularity=60&start={iso(start)}&end={iso(end)}"
    )
    got = {row[0]: row for row in reply.exact()}
    assert reply.exact() == dataset.mixed_candles(
        analysis.ticks, analysis.trades, "BTC-EUR", 60, start, end
    )
    sources = dict(part.split("=") for part in reply.headers["x-candle-sources"].split(", "))
    assert int(sources["trade"]) > 100 and int(sources["order"]) >= 40

    def bucket(minute: int) -> str:
        return str(unix(T0 + minute * M))

    def volume(rows: list[dataset.Tick] | list[TapeTrade], minute: int) -> Decimal:
        b0 = T0 + minute * M
        return sum(
            (Decimal(r.size) for r in rows if r.product == "BTC-EUR" and b0 <= r.time < b0 + M),
            Decimal(0),
        )

    # Minutes 1-98 are covered: their volume is every trade's, more than the ticks report
    # wherever a batch held several matches.
    richer = [
        minute
        for minute in range(1, 99)
        if volume(analysis.trades, minute) > volume(analysis.ticks, minute)
    ]
    assert len(richer) > 20
    for minute in richer:
        assert dataset.covers(analysis.trades, "BTC-EUR", T0 + minute * M, T0 + (minute + 1) * M)
        assert Decimal(got[bucket(minute)][5]) == volume(analysis.trades, minute)
    # The tape starts in minute 0, misses minutes 100-102 and stops at 4 h: ticks there.
    for minute in (0, 101, 4 * 60 + 5):
        if bucket(minute) in got:
            assert Decimal(got[bucket(minute)][5]) == volume(analysis.ticks, minute), minute
    # Minute 99 is whole, but the next stored trade is after the hole: not provable, ticks.
    assert not dataset.covers(analysis.trades, "BTC-EUR", T0 + 99 * M, T0 + 100 * M)
    assert dataset.covers(analysis.trades, "BTC-EUR", T0 + 50 * M, T0 + 51 * M)


def test_openapi_lists_the_tape_endpoints(analysis: Analysis) -> None:
    spec = analysis.get("/openapi.json").json()
    assert {"/products/{product_id}/trades", "/products/{product_id}/completeness"} <= set(
        spec["paths"]
    )
