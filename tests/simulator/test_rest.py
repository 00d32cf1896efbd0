"""GET /products/{id}/trades over real HTTP: Coinbase's pages and cursors, the same history as
the feed, the rate limit, and each fault."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from simulator import MAX_LIMIT, REST_KEYS, SimulatorConfig, SimulatorThread

from .helpers import collect, messages_of, open_client, read_until_closed, rest_get, subscribe

pytestmark = pytest.mark.timeout(30)
BTC = "BTC-USD"


def trades_url(sim: SimulatorThread, product: str = BTC, /, **query: object) -> str:
    suffix = "&".join(f"{key}={value}" for key, value in query.items())
    return f"{sim.rest_url}/products/{product}/trades" + (f"?{suffix}" if suffix else "")


def page(url: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    status, headers, body = rest_get(url)
    assert status == 200, (status, body)
    assert headers["Content-Type"].startswith("application/json")
    trades: list[dict[str, Any]] = json.loads(body)
    return trades, headers


@pytest.fixture(scope="module")
def traded() -> Iterator[SimulatorThread]:
    """A simulator that made a fixed ~1,500 trades per product, REST unlimited."""
    config = SimulatorConfig(products=(BTC, "ETH-BTC"), rate=0, count=1200, seed=11, rest_rate=0)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, [BTC, "ETH-BTC"], ["ticker"])
        assert sim.wait_until(lambda s: s.done(), timeout=15)
        yield sim


def test_default_page_is_the_newest_1000_newest_first(traded: SimulatorThread) -> None:
    made = traded.trades()[BTC]
    assert len(made) > MAX_LIMIT + 100
    trades, headers = page(trades_url(traded))
    assert len(trades) == MAX_LIMIT
    assert [json.dumps(t, separators=(",", ":")) for t in trades] == [
        t.rest_text() for t in reversed(made[-MAX_LIMIT:])
    ]
    for trade in trades:
        assert tuple(trade) == REST_KEYS
        assert isinstance(trade["trade_id"], int) and trade["side"] in ("buy", "sell")
        assert len(trade["price"].split(".")[1]) == 8 and len(trade["size"].split(".")[1]) == 8
    assert headers["CB-BEFORE"] == str(trades[0]["trade_id"]) == str(made[-1].trade_id)
    assert headers["CB-AFTER"] == str(trades[-1]["trade_id"])


def test_after_pages_back_through_the_whole_history(traded: SimulatorThread) -> None:
    made = traded.trades()[BTC]
    seen: list[int] = []
    trades, headers = page(trades_url(traded, limit=300))
    requests = 1
    while trades:
        ids = [t["trade_id"] for t in trades]
        assert ids == list(range(ids[0], ids[0] - len(ids), -1)), "newest first, contiguous"
        seen += ids
        trades, headers = page(trades_url(traded, limit=300, after=headers["CB-AFTER"]))
        requests += 1
    assert "CB-AFTER" not in headers and "CB-BEFORE" not in headers  # an empty page
    assert seen == [t.trade_id for t in reversed(made)], "every trade once, newest first"
    assert requests == -(-len(made) // 300) + 1


def test_before_pages_forward_from_a_cursor(traded: SimulatorThread) -> None:
    made = [t.trade_id for t in traded.trades()[BTC]]
    cursor = made[100]
    trades, headers = page(trades_url(traded, before=cursor, limit=50))
    assert [t["trade_id"] for t in trades] == made[101:151][::-1]  # newer than the cursor
    trades, _ = page(trades_url(traded, before=headers["CB-BEFORE"], limit=50))
    assert [t["trade_id"] for t in trades] == made[151:201][::-1]
    trades, _ = page(trades_url(traded, before=made[-3], limit=1000))
    assert [t["trade_id"] for t in trades] == made[-2:][::-1]
    assert page(trades_url(traded, before=made[-1]))[0] == []


def test_a_hole_is_repaired_with_after_pages(traded: SimulatorThread) -> None:
    # coinbase-protocol.md: hole (a, b) -> after=b pages until a + 1 is reached.
    made = {t.trade_id: t for t in traded.trades()[BTC]}
    ids = sorted(made)
    a, b = ids[10], ids[10] + 1201  # 1,200 missing: two requests
    assert b < ids[-1]
    fetched: list[dict[str, Any]] = []
    cursor, requests = b, 0
    while not fetched or fetched[-1]["trade_id"] > a + 1:
        trades, headers = page(trades_url(traded, after=cursor))
        fetched += trades
        cursor, requests = int(headers["CB-AFTER"]), requests + 1
    assert requests == 2
    missing = [t for t in fetched if a < t["trade_id"] < b]
    assert [t["trade_id"] for t in missing] == list(range(b - 1, a, -1))
    for trade in missing:
        own = made[trade["trade_id"]]
        assert (trade["time"], trade["side"]) == (own.time, own.side)
        assert Decimal(trade["price"]) == Decimal(own.price)
        assert Decimal(trade["size"]) == Decimal(own.size)


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"limit": 0}, 400, "limit"),
        ({"limit": 1001}, 400, "limit"),
        ({"limit": "ten"}, 400, "limit"),
        ({"after": "-5"}, 400, "after"),
        ({"after": ""}, 400, "after"),
        ({"before": "1.5"}, 400, "before"),
        ({"before": 1, "after": 9}, 400, "before and after"),
    ],
)
def test_bad_queries_get_400_with_a_message(
    traded: SimulatorThread, query: dict[str, object], status: int, message: str
) -> None:
    answer, _, body = rest_get(trades_url(traded, **query))
    assert answer == status
    assert message in json.loads(body)["message"]


def test_unknown_product_or_path_is_404_like_coinbase(traded: SimulatorThread) -> None:
    for url in (trades_url(traded, "XRP-JPY"), f"{traded.rest_url}/products/{BTC}/book",
                f"{traded.rest_url}/"):  # fmt: skip
        status, headers, body = rest_get(url)
        assert status == 404
        assert json.loads(body) == {"message": "NotFound"}
        assert headers["Content-Type"].startswith("application/json")
    assert rest_get(trades_url(traded), method="POST")[0] == 405


def test_rest_serves_the_feeds_history_including_trades_no_one_received() -> None:
    config = SimulatorConfig(products=(BTC,), rate=200, seed=7, drop_one_every=0.5, rest_rate=0)
    received: list[str] = []
    with SimulatorThread(config) as sim:
        for _ in range(2):
            with open_client(sim.url) as ws:
                subscribe(ws, [BTC], ["matches"])
                received += read_until_closed(ws, timeout=3)
            time.sleep(0.3)  # down: trades go on
        rest: list[dict[str, Any]] = []
        trades, headers = page(trades_url(sim, limit=1000))
        while trades:
            rest += trades
            trades, headers = page(trades_url(sim, after=headers["CB-AFTER"]))
        made = sim.trades()[BTC]  # after the paging: the market went on meanwhile
    newest = rest[0]["trade_id"]  # the first page's newest; later trades are not in `rest`
    expected = [t.trade_id for t in reversed(made) if t.trade_id <= newest]
    assert [t["trade_id"] for t in rest] == expected
    assert rest[-1]["trade_id"] == made[0].trade_id
    feed = {m["trade_id"]: m for m in messages_of(received, "match")}
    feed.update({m["trade_id"]: m for m in messages_of(received, "last_match")})
    by_id = {t["trade_id"]: t for t in rest}
    assert len(by_id) > len(feed) + 40, "REST has the trades made while the feed was down"
    for trade_id, match in feed.items():
        trade = by_id[trade_id]
        assert (trade["time"], trade["side"]) == (match["time"], match["side"])
        assert Decimal(trade["price"]) == Decimal(match["price"])
        assert Decimal(trade["size"]) == Decimal(match["size"])


def test_rest_and_websocket_share_the_port() -> None:
    config = SimulatorConfig(products=(BTC,), rate=100, seed=1, rest_rate=0)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, [BTC], ["matches"])
        for _ in range(5):
            page(trades_url(sim, limit=5))
        frames = collect(ws, 0.3)
        assert sim.connections == 1  # REST requests are not feed connections
        assert sim.rest_url == "http" + sim.url[2:]
    assert len(messages_of(frames, "match")) > 10


def test_trades_start_at_the_first_subscription_or_with_autostart() -> None:
    for autostart in (False, True):
        config = SimulatorConfig(products=(BTC,), rate=100, rest_rate=0, autostart=autostart)
        with SimulatorThread(config) as sim:
            time.sleep(0.5)
            trades, _ = page(trades_url(sim))
            made = sim.trade_counts()[BTC]
        assert len(trades) == made
        if autostart:
            assert made > 40  # no connection ever: REST alone sees the market move
        else:
            assert made == 1  # only the trade before the start


def test_429_above_the_rate_and_counted() -> None:
    config = SimulatorConfig(products=(BTC,), rest_rate=5, rest_burst=5)
    with SimulatorThread(config) as sim:
        started = time.monotonic()
        answered = [rest_get(trades_url(sim, limit=1)) for _ in range(20)]
        elapsed = time.monotonic() - started
        counts = sim.rest_counts()
        time.sleep(0.5)  # ~2 tokens back
        later = [rest_get(trades_url(sim, limit=1))[0] for _ in range(2)]
        logged = sim.rest_requests()
        newest = sim.trades()[BTC][-1].trade_id
    statuses = [status for status, _, _ in answered]
    assert statuses[:5] == [200] * 5 and set(statuses) == {200, 429}
    assert statuses.count(200) <= 5 + int(elapsed * 5) + 1, (elapsed, statuses)
    throttled = [body for status, _, body in answered if status == 429]
    assert json.loads(throttled[0]) == {"message": "Public rate limit exceeded"}
    assert counts == {"requests": 20, "ok": statuses.count(200), "throttled": len(throttled),
                      "faulted": 0, "rejected": 0}  # fmt: skip
    assert later == [200, 200]
    assert [r.status for r in logged] == [*statuses, *later]
    assert logged[0].path == f"/products/{BTC}/trades?limit=1" and logged[0].fault is None
    assert logged[0].served == (newest, newest)
    assert logged[statuses.index(429)].served is None


def test_rate_limit_holds_over_time() -> None:
    config = SimulatorConfig(products=(BTC,), rest_rate=10, rest_burst=15)
    with SimulatorThread(config) as sim:
        ok = 0
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            ok += rest_get(trades_url(sim, limit=1))[0] == 200
    assert 15 + 10 <= ok <= 15 + 17, ok  # the burst, then 10/s


def answers(sim: SimulatorThread, n: int) -> list[tuple[int, dict[str, str], bytes]]:
    return [rest_get(trades_url(sim, limit=10)) for _ in range(n)]


def faulty(kind: str, share: float = 1.0) -> SimulatorConfig:
    return SimulatorConfig(
        products=(BTC,), rest_rate=0, rest_fault_share=share, rest_fault_kinds=(kind,)
    )


def test_fault_html_page_with_status_200() -> None:
    with SimulatorThread(faulty("html")) as sim:
        [(status, headers, body)] = answers(sim, 1)
        assert sim.rest_counts()["faulted"] == 1
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body.startswith(b"<!DOCTYPE html>")
    with pytest.raises(ValueError):
        json.loads(body)


def test_fault_truncated_json() -> None:
    config = faulty("truncated_json")
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, [BTC], ["ticker"])
        sim.wait_until(lambda s: s.trade_counts()[BTC] > 20)
        [(status, headers, body)] = answers(sim, 1)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert body.startswith(b'[{"time":')
    with pytest.raises(ValueError):
        json.loads(body)


def test_fault_wrong_types() -> None:
    with SimulatorThread(faulty("wrong_types")) as sim:
        [(status, _, body)] = answers(sim, 1)
    assert status == 200
    [trade] = json.loads(body)  # only the trade made before the start
    assert tuple(trade) == REST_KEYS
    assert isinstance(trade["trade_id"], str)
    assert isinstance(trade["price"], float) and isinstance(trade["size"], float)
    assert isinstance(trade["time"], float)


def test_fault_server_error() -> None:
    with SimulatorThread(faulty("server_error")) as sim:
        [(status, _, body)] = answers(sim, 1)
    assert status == 500 and json.loads(body) == {"message": "Internal Server Error"}


def test_fault_share_spreads_faults_and_cycles_kinds() -> None:
    config = SimulatorConfig(products=(BTC,), rest_rate=0, rest_fault_share=0.25)
    with SimulatorThread(config) as sim:
        statuses = [status for status, _, _ in answers(sim, 16)]
        logged = sim.rest_requests()
        counts = sim.rest_counts()
    assert [r.fault for r in logged if r.fault] == [
        "html", "truncated_json", "wrong_types", "server_error"
    ]  # fmt: skip
    assert [i for i, r in enumerate(logged) if r.fault] == [3, 7, 11, 15]
    assert logged[3].served is None and logged[7].served is not None  # html; truncated
    assert statuses[15] == 500 and statuses.count(200) == 15
    assert (counts["faulted"], counts["ok"], counts["requests"]) == (4, 12, 16)
