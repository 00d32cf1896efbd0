"""The HTTP API against real MariaDB: every answer checked against dataset.py's oracle."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest

from tests.analysis import dataset
from tests.analysis.conftest import Analysis
from tests.analysis.dataset import T0, iso, unix

H = timedelta(hours=1)


def candles_path(product: str, granularity: int, start: object, end: object) -> str:
    return (
        f"/products/{product}/candles?granularity={granularity}"
        f"&start={quote(str(start))}&end={quote(str(end))}"
    )


def oracle(
    analysis: Analysis, product: str, granularity: int, start: datetime, end: datetime
) -> list[list[str]]:
    """dataset.py's candles: from the tape where it covers the bucket, else from ticks."""
    return dataset.mixed_candles(analysis.ticks, analysis.trades, product, granularity, start, end)


def test_products_lists_first_last_and_count(analysis: Analysis) -> None:
    reply = analysis.get("/products")
    assert reply.status == 200
    expected = []
    for product in sorted(dataset.PRODUCTS):
        mine = [t.time for t in analysis.ticks if t.product == product]
        expected.append(
            {
                "id": product,
                "first_time": iso(min(mine)),
                "last_time": iso(max(mine)),
                "ticks": len(mine),
            }
        )
    assert reply.json() == expected


def test_candles_across_bucket_edges_ties_and_empty_minutes(analysis: Analysis) -> None:
    reply = analysis.get(
        candles_path("BTC-USD", 60, "2026-09-29T13:00:00Z", "2026-09-29T13:10:00Z")
    )
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    got = reply.exact()
    assert got == oracle(analysis, "BTC-USD", 60, T0, T0 + timedelta(minutes=10))
    # Spelled out, so the oracle itself is checked: 13:03 is empty and omitted; 13:02's open
    # is sequence 104 (stored after 105, same time); the 13:01:00.000000 tick opens 13:01.
    base = unix(T0)
    assert [row[0] for row in got] == [str(base + 240), str(base + 120), str(base + 60), str(base)]
    assert got[1] == [str(base + 120), "84001", "84002", "84001", "84002", "3"]
    assert got[2] == [str(base + 60), "83990", "83990", "83990", "83990", "0.000000000000000001"]
    assert got[3] == [
        str(base),
        "84000.100000000000000001",
        "84010.5",
        "84000.100000000000000001",
        "84010.5",
        "0.3",
    ]
    # Exact digits in the body itself: 20 integer digits, a sum that a float would round.
    assert b"12345678901234567890.5" in reply.body
    assert b",100000000000000000000.299999999999999999]" in reply.body


@pytest.mark.parametrize("granularity", [60, 300, 900, 3600, 21600, 86400])
def test_candles_of_a_random_walk_at_every_granularity(
    analysis: Analysis, granularity: int
) -> None:
    span = min(299 * granularity, 6 * 3600)  # one bucket before T0: 300 in all
    start, end = T0 - timedelta(seconds=granularity), T0 + timedelta(seconds=span)
    reply = analysis.get(candles_path("BTC-EUR", granularity, iso(start), iso(end)))
    assert reply.status == 200
    expected = oracle(
        analysis,
        "BTC-EUR",
        granularity,
        dataset.EPOCH + timedelta(seconds=unix(start) // granularity * granularity),
        end,
    )
    assert reply.exact() == expected
    assert len(expected) > (1 if granularity < 21600 else 0)


def test_candles_unaligned_bounds_take_whole_buckets(analysis: Analysis) -> None:
    # 13:00:30 .. 13:02:10 covers the buckets 13:00, 13:01 and 13:02 whole.
    reply = analysis.get(
        candles_path("BTC-USD", 60, "2026-09-29T13:00:30Z", "2026-09-29T13:02:10Z")
    )
    assert reply.exact() == oracle(analysis, "BTC-USD", 60, T0, T0 + timedelta(minutes=3))
    # Unix seconds and a +02:00 offset name the same instants.
    same = analysis.get(candles_path("BTC-USD", 60, unix(T0) + 30, "2026-09-29T15:02:10+02:00"))
    assert same.body == reply.body


def test_candles_default_is_the_latest_300_buckets(analysis: Analysis) -> None:
    reply = analysis.get("/products/ETH-BTC/candles?granularity=60")
    assert reply.status == 200
    got = reply.exact()
    end = analysis.now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    expected = oracle(analysis, "ETH-BTC", 60, end - timedelta(minutes=300), end)
    # The clock may have crossed a minute since the fixture: allow the window to slide by one.
    later = oracle(
        analysis, "ETH-BTC", 60, end - timedelta(minutes=299), end + timedelta(minutes=1)
    )
    assert got in (expected, later)
    assert 0 < len(got) <= 300


def test_candles_limits_and_bad_parameters(analysis: Analysis) -> None:
    at = "2026-09-29T13:00:00Z"
    cases = {
        candles_path("BTC-USD", 61, at, "2026-09-29T14:00:00Z"): (400, "granularity must be"),
        candles_path("BTC-USD", 60, at, "2026-09-29T18:01:00Z"): (400, "at most 300 buckets"),
        candles_path("BTC-USD", 60, at, at): (400, "end must be after start"),
        candles_path("BTC-USD", 60, "yesterday", at): (400, "start is not an ISO-8601"),
        f"/products/BTC-USD/candles?start={at}": (400, "give both start and end"),
        "/products/BTC-USD/candles?granularity=abc": (422, "granularity:"),
        "/products/NOPE-USD/candles": (404, "unknown product 'NOPE-USD'"),
        f"/products/{'X' * 40}/candles": (422, "product_id:"),
    }
    for path, (status, message) in cases.items():
        reply = analysis.get(path)
        assert (reply.status, path) == (status, path)
        body = reply.json()
        assert message in body["message"], (path, body)
        assert "\n" not in body["message"]
    # Exactly 300 buckets is allowed.
    assert analysis.get(candles_path("BTC-USD", 60, at, "2026-09-29T18:00:00Z")).status == 200


def test_ticker_is_the_latest_by_time_then_sequence(analysis: Analysis) -> None:
    reply = analysis.get("/products/BTC-USD/ticker")
    assert reply.status == 200
    tick = dataset.latest(analysis.ticks, "BTC-USD")
    assert tick.sequence == 4 * 10**6 + 1  # the oracle agrees with the set-up's intent
    assert reply.json() == {
        "trade_id": tick.trade_id,
        "price": "84301.25",
        "size": "0.25",
        "time": iso(tick.time),
        "bid": "84300.5",
        "ask": "84301.75",
        "volume": "5667.4192685",
        "sequence": tick.sequence,
    }
    assert analysis.get("/products/NOPE-USD/ticker").status == 404


def test_stats_cover_the_last_24_hours(analysis: Analysis) -> None:
    for product in dataset.PRODUCTS:
        reply = analysis.get(f"/products/{product}/stats")
        assert reply.status == 200
        mine = sorted(
            dataset.window(analysis.ticks, product, analysis.now - 24 * H),
            key=lambda t: t.order_key,
        )
        prices = [Decimal(t.price) for t in mine]
        assert reply.json() == {
            "open": mine[0].price,
            "high": dataset.text(max(prices)),
            "low": dataset.text(min(prices)),
            "last": mine[-1].price,
            "volume": dataset.text(sum((Decimal(t.size) for t in mine), Decimal(0))),
        }
    assert analysis.get("/products/NOPE-USD/stats").status == 404


@pytest.mark.parametrize(
    ("product", "hours", "limit"),
    [(None, 24, 10), ("BTC-USD", 24, 3), ("ETH-BTC", 30, 5), (None, 168, 100)],
)
def test_largest_trades(analysis: Analysis, product: str | None, hours: int, limit: int) -> None:
    query = f"hours={hours}&limit={limit}" + (f"&product_id={product}" if product else "")
    reply = analysis.get(f"/trades/largest?{query}")
    assert reply.status == 200
    expected = dataset.largest(analysis.ticks, product, analysis.now - hours * H, limit)
    assert reply.json() == [
        {
            "product_id": t.product,
            "sequence": t.sequence,
            "trade_id": t.trade_id,
            "time": iso(t.time),
            "price": t.price,
            "size": t.size,
            "side": t.side,
            "notional": dataset.notional(t),
        }
        for t in expected
    ]


def test_largest_trades_window_ties_and_bad_parameters(analysis: Analysis) -> None:
    top = analysis.get("/trades/largest?product_id=BTC-USD&limit=2").json()
    # The size-500 tick is 26 h old: outside 24 h. The 77.5 tie: the newer first.
    assert [(t["size"], t["sequence"]) for t in top] == [
        ("77.5", 3 * 10**6 + 1),
        ("77.5", 3 * 10**6),
    ]
    assert top[0]["notional"] == "6525500"  # 84200 x 77.5
    older = analysis.get("/trades/largest?product_id=BTC-USD&hours=30&limit=1").json()
    assert older[0]["size"] == "500"
    for query, status in [
        ("limit=0", 422),
        ("limit=101", 422),
        ("hours=0", 422),
        ("hours=169", 422),
        ("hours=x", 422),
        ("product_id=NOPE-USD", 404),
    ]:
        reply = analysis.get(f"/trades/largest?{query}")
        assert (query, reply.status) == (query, status)
        assert reply.json()["message"]


def test_coverage_finds_the_hole(analysis: Analysis) -> None:
    start, end = T0 - timedelta(minutes=10), T0 + timedelta(minutes=70)
    reply = analysis.get(
        f"/coverage?product_id=ETH-BTC&start={iso(start)}&end={iso(end)}&min_gap_s=300"
    )
    assert reply.status == 200
    expected = dataset.gaps(analysis.ticks, "ETH-BTC", start, end, 300)
    assert reply.json() == [
        {"start": iso(a), "end": iso(b), "seconds": (b - a).total_seconds()} for a, b in expected
    ]
    # The 15 empty minutes are there, and so are the 10 before the first tick.
    assert len(expected) >= 3
    assert any(g["seconds"] > 900 for g in reply.json())


def test_coverage_limits_and_empty_ranges(analysis: Analysis) -> None:
    start, end = T0 - timedelta(days=3), T0 - timedelta(days=2)
    whole = analysis.get(f"/coverage?product_id=ETH-BTC&start={iso(start)}&end={iso(end)}")
    assert whole.json() == [{"start": iso(start), "end": iso(end), "seconds": 86400.0}]
    few = analysis.get(
        f"/coverage?product_id=BTC-EUR&start={iso(T0)}&end={iso(T0 + 6 * H)}&min_gap_s=60&limit=2"
    )
    expected = dataset.gaps(analysis.ticks, "BTC-EUR", T0, T0 + 6 * H, 60)
    assert len(expected) > 2
    assert few.json() == [
        {"start": iso(a), "end": iso(b), "seconds": (b - a).total_seconds()}
        for a, b in expected[:2]
    ]
    for query, status in [
        ("product_id=NOPE-USD", 404),
        ("", 422),
        (f"product_id=ETH-BTC&start={iso(T0)}&end={iso(T0 + 8 * 24 * H)}", 400),
        ("product_id=ETH-BTC&min_gap_s=0", 422),
    ]:
        assert analysis.get(f"/coverage?{query}").status == status, query


def test_health_metrics_docs(analysis: Analysis) -> None:
    assert analysis.get("/healthz").json() == {"healthy": True, "database": "ok"}
    analysis.get("/products/BTC-USD/ticker")
    metrics = analysis.get("/metrics").body.decode()
    assert 'analysis_requests_total{route="/products/{product_id}/ticker",status="200"}' in metrics
    assert "analysis_request_seconds_bucket" in metrics
    docs = analysis.get("/docs")
    assert docs.status == 200 and b"swagger" in docs.body.lower()
    spec = analysis.get("/openapi.json").json()
    assert {
        "/products",
        "/products/{product_id}/candles",
        "/products/{product_id}/ticker",
        "/products/{product_id}/stats",
        "/trades/largest",
        "/coverage",
    } <= set(spec["paths"])
    assert "undercounts" in spec["info"]["description"]
    assert analysis.get("/nothing-here").status == 404
