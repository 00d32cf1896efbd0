"""Ticks with known answers, written straight into a test copy of `order`, and an oracle.

The oracle computes candles, tickers, stats, largest trades and gaps from the Python list of
ticks with Decimal arithmetic, independently of the service's SQL.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

from pymysql.connections import Connection
from pymysql.cursors import Cursor

EPOCH = datetime(1970, 1, 1)
# Historical ticks (explicit start/end requests) start here; live ones sit before "now".
T0 = datetime(2026, 9, 29, 13, 0, 0)
PRODUCTS = ("BTC-USD", "ETH-BTC", "BTC-EUR")


@dataclass(frozen=True)
class Tick:
    product: str
    sequence: int
    time: datetime  # naive UTC
    price: str
    size: str
    side: str = "buy"
    trade_id: int = 0
    bid: str = "1.5"
    ask: str = "2.5"
    volume_24h: str = "5667.4192685"

    @property
    def order_key(self) -> tuple[datetime, int]:
        return (self.time, self.sequence)


def text(value: Decimal) -> str:
    """The canonical exact text of a decimal: no exponent, no trailing zeros."""
    with localcontext() as context:
        context.prec = 100  # normalize() rounds to the context's precision (28 by default)
        return format(value.normalize(), "f") if value else "0"


def edge_ticks() -> list[Tick]:
    """BTC-USD around T0: bucket edges, ties on time, an empty minute, extreme decimals."""
    at = T0
    ticks = [
        Tick("BTC-USD", 101, at + timedelta(seconds=0), "84000.100000000000000001", "0.1"),
        Tick("BTC-USD", 102, at + timedelta(seconds=59, microseconds=999_999), "84010.5", "0.2"),
        # 13:01:00.000000 opens the next minute, not the previous one.
        Tick("BTC-USD", 103, at + timedelta(minutes=1), "83990", "0.000000000000000001"),
        # Same time, sequences 105 and 104 stored in that order: 104 opens, 105 closes.
        Tick("BTC-USD", 105, at + timedelta(minutes=2, seconds=30), "84002", "1"),
        Tick("BTC-USD", 104, at + timedelta(minutes=2, seconds=30), "84001", "2"),
        # 13:03 has no tick; 13:04 holds one with the largest sizes and digits a column takes.
        Tick(
            "BTC-USD",
            106,
            at + timedelta(minutes=4, seconds=1),
            "12345678901234567890.5",
            "99999999999999999999.999999999999999999",
        ),
        Tick("BTC-USD", 107, at + timedelta(minutes=4, seconds=2), "0.000000000000000001", "0.3"),
    ]
    return [tick_with_trade_id(tick) for tick in ticks]


def tick_with_trade_id(tick: Tick) -> Tick:
    return Tick(**{**tick.__dict__, "trade_id": tick.sequence * 10})


def random_ticks(
    product: str,
    start: datetime,
    minutes: int,
    seed: int,
    first_sequence: int,
    gap: tuple[int, int] | None = None,
) -> list[Tick]:
    """A seeded walk of ticks over `minutes`, skipping the minutes in `gap` [from, to)."""
    rng = random.Random(seed)
    price = Decimal("84000") if product != "ETH-BTC" else Decimal("0.034")
    step = price / 10_000
    ticks: list[Tick] = []
    sequence = first_sequence
    for minute in range(minutes):
        if gap and gap[0] <= minute < gap[1]:
            continue
        for _ in range(rng.randint(0, 4)):  # some minutes stay empty
            sequence += rng.randint(1, 3)
            price = max(step, price + step * rng.randint(-5, 5))
            at = start + timedelta(minutes=minute, microseconds=rng.randrange(60_000_000))
            size = Decimal(rng.randint(1, 10**8)) / Decimal(10**8)
            ticks.append(
                Tick(
                    product,
                    sequence,
                    at,
                    text(price.quantize(step)),
                    text(size),
                    side=rng.choice(("buy", "sell")),
                    trade_id=sequence * 10,
                )
            )
    return ticks


def live_ticks(now: datetime) -> list[Tick]:
    """Ticks of the last 30 hours for every product (stats, largest trades, the page)."""
    ticks: list[Tick] = []
    for number, product in enumerate(PRODUCTS):
        start = now - timedelta(hours=5)
        ticks += random_ticks(product, start, 5 * 60 - 10, seed=number, first_sequence=10**6)
        # Outside the 24-hour window: the largest size of all, which must not be listed.
        ticks.append(
            Tick(product, 10**6 - 1, now - timedelta(hours=26), "80000", "500", trade_id=1)
        )
    # Two BTC-USD ticks tie on size; the newer one ranks first.
    ticks.append(Tick("BTC-USD", 3 * 10**6, now - timedelta(hours=2), "84100", "77.5", trade_id=5))
    ticks.append(
        Tick(
            "BTC-USD",
            3 * 10**6 + 1,
            now - timedelta(hours=1),
            "84200",
            "77.5",
            side="sell",
            trade_id=6,
        )
    )
    # The latest BTC-USD time twice: sequence breaks the tie (the higher wins); a higher
    # sequence stored with an older time is not the latest.
    latest = now - timedelta(minutes=3)
    ticks.append(Tick("BTC-USD", 4 * 10**6, latest, "84300", "0.5", trade_id=7))
    ticks.append(
        Tick(
            "BTC-USD",
            4 * 10**6 + 1,
            latest,
            "84301.25",
            "0.25",
            trade_id=8,
            bid="84300.5",
            ask="84301.75",
        )
    )
    ticks.append(Tick("BTC-USD", 9 * 10**6, latest - timedelta(seconds=1), "1", "0.1", trade_id=9))
    return ticks


def history_ticks() -> list[Tick]:
    """Edge cases near T0, a seeded walk on BTC-EUR, and ETH-BTC with a 15-minute hole."""
    return [
        *edge_ticks(),
        *random_ticks("BTC-EUR", T0, 6 * 60, seed=7, first_sequence=1),
        *random_ticks("ETH-BTC", T0, 60, seed=8, first_sequence=1, gap=(30, 45)),
    ]


COLUMNS = (
    "product_id, sequence, trade_id, price, side, last_size, best_bid, best_bid_size, best_ask,"
    " best_ask_size, open_24h, volume_24h, low_24h, high_24h, volume_30d, time, received_at,"
    " kafka_partition, kafka_offset"
)


def insert(connection: Connection[Cursor], database: str, ticks: Iterable[Tick]) -> None:
    rows = [
        (
            t.product,
            t.sequence,
            t.trade_id,
            t.price,
            t.side,
            t.size,
            t.bid,
            "1",
            t.ask,
            "1",
            "83000",
            t.volume_24h,
            "82000",
            "85000",
            "180889.671598",
            t.time,
            t.time,
            PRODUCTS.index(t.product),
            t.sequence,
        )
        for t in ticks
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO `{database}`.`order` ({COLUMNS}) VALUES ({', '.join(['%s'] * 19)})",
            rows,
        )


# ---------------------------------------------------------------- the oracle


def unix(at: datetime) -> int:
    return int((at - EPOCH).total_seconds())


def candles(
    ticks: list[Tick], product: str, granularity: int, start: datetime, end: datetime
) -> list[list[str]]:
    """[[time, low, high, open, close, volume], ...] newest first, as exact texts."""
    buckets: dict[int, list[Tick]] = {}
    for tick in ticks:
        if tick.product == product and start <= tick.time < end:
            buckets.setdefault(unix(tick.time) // granularity * granularity, []).append(tick)
    result = []
    for bucket in sorted(buckets, reverse=True):
        members = sorted(buckets[bucket], key=lambda t: t.order_key)
        prices = [Decimal(t.price) for t in members]
        with localcontext() as context:
            context.prec = 100
            volume = sum((Decimal(t.size) for t in members), Decimal(0))
        result.append(
            [
                str(bucket),
                text(min(prices)),
                text(max(prices)),
                text(Decimal(members[0].price)),
                text(Decimal(members[-1].price)),
                text(volume),
            ]
        )
    return result


def latest(ticks: list[Tick], product: str) -> Tick:
    return max((t for t in ticks if t.product == product), key=lambda t: t.order_key)


def window(ticks: list[Tick], product: str | None, since: datetime) -> list[Tick]:
    return [t for t in ticks if (product is None or t.product == product) and t.time >= since]


def largest(ticks: list[Tick], product: str | None, since: datetime, limit: int) -> list[Tick]:
    chosen = sorted(window(ticks, product, since), key=lambda t: t.product)  # last tie-break
    chosen.sort(key=lambda t: (Decimal(t.size), t.time, t.sequence), reverse=True)
    return chosen[:limit]


def notional(tick: Tick) -> str:
    with localcontext() as context:
        context.prec = 100
        return text(Decimal(tick.price) * Decimal(tick.size))


def gaps(
    ticks: list[Tick], product: str, start: datetime, end: datetime, min_gap_s: int
) -> list[tuple[datetime, datetime]]:
    times = sorted(t.time for t in ticks if t.product == product and start <= t.time < end)
    edges = [start, *times, end] if times else [start, end]
    return [(a, b) for a, b in itertools.pairwise(edges) if (b - a).total_seconds() > min_gap_s]


def iso(at: datetime) -> str:
    return at.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------- the trade tape


@dataclass(frozen=True)
class TapeTrade:
    product: str
    trade_id: int
    time: datetime  # naive UTC
    price: str
    size: str
    side: str  # the maker's
    source: str = "ws"

    @property
    def order_key(self) -> tuple[datetime, int]:
        return (self.time, self.trade_id)


def tape_from_ticks(ticks: list[Tick], first_id: int, seed: int) -> list[TapeTrade]:
    """The matches behind the ticks: each tick is the last match of a batch of 1-3 (same
    price, size and time, the maker's side opposite), the batch's earlier matches a few
    microseconds before it; ids consecutive, times never going back."""
    rng = random.Random(seed)
    trades: list[TapeTrade] = []
    trade_id = first_id
    last_time = datetime.min
    for tick in sorted(ticks, key=lambda t: t.order_key):
        maker = "sell" if tick.side == "buy" else "buy"
        batch = rng.randint(1, 3)
        for earlier in range(batch - 1, -1, -1):
            at = max(last_time, tick.time - timedelta(microseconds=earlier * rng.randint(1, 900)))
            size = tick.size if earlier == 0 else text(Decimal(rng.randint(1, 10**6)) / 10**8)
            trades.append(TapeTrade(tick.product, trade_id, at, tick.price, size, maker))
            trade_id += 1
            last_time = at
    return trades


def history_tape(ticks: list[Tick]) -> list[TapeTrade]:
    """BTC-EUR's tape near T0: it starts with the ticks and stops at T0 + 4 h (the ticks go
    on); minutes 100-102 are missing whole, two ids of minute 150 and one of 201 too; the
    trades of minutes 30-40 came from REST."""
    walk = [t for t in ticks if t.product == "BTC-EUR" and t.time < T0 + timedelta(hours=4)]
    tape = tape_from_ticks(walk, first_id=5000, seed=11)
    minute = {t.trade_id: int((t.time - T0).total_seconds() // 60) for t in tape}
    in_150 = [t.trade_id for t in tape if minute[t.trade_id] == 150]
    in_201 = [t.trade_id for t in tape if minute[t.trade_id] == 201]
    assert len(in_150) >= 4 and len(in_201) >= 2, "the seed no longer gives these minutes"
    dropped = {*in_150[1:3], in_201[1]}
    return [
        TapeTrade(**{**t.__dict__, "source": "rest" if 30 <= minute[t.trade_id] <= 40 else "ws"})
        for t in tape
        if not 100 <= minute[t.trade_id] <= 102 and t.trade_id not in dropped
    ]


def live_tape(ticks: list[Tick], now: datetime) -> list[TapeTrade]:
    """The last hours' tape of each product, from its seeded walk: BTC-USD complete with 20
    trades from REST, ETH-BTC with 5 ids missing two hours ago, BTC-EUR after a gap of ids
    since its history tape (a hole at the edge of every window starting before it)."""
    tape: list[TapeTrade] = []
    for number, product in enumerate(PRODUCTS):
        walk = [t for t in ticks if t.product == product and 10**6 <= t.sequence < 3 * 10**6]
        tape += tape_from_ticks(walk, first_id=(number + 1) * 100_000, seed=number + 20)
    two_hours_ago = [t for t in tape if t.product == "ETH-BTC" and t.time >= now - 2 * HOUR]
    dropped = {t.trade_id for t in two_hours_ago[:5]}
    repaired = {t.trade_id for t in tape if t.product == "BTC-USD"}
    repaired = set(sorted(repaired)[100:120])
    return [
        TapeTrade(**{**t.__dict__, "source": "rest" if t.trade_id in repaired else "ws"})
        for t in tape
        if t.trade_id not in dropped
    ]


HOUR = timedelta(hours=1)
TRADE_COLUMNS = (
    "product_id, trade_id, side, price, size, time, sequence, maker_order_id, taker_order_id,"
    " source, received_at, kafka_partition, kafka_offset"
)


def insert_trades(
    connection: Connection[Cursor], database: str, trades: Iterable[TapeTrade]
) -> None:
    rows = [
        (
            t.product,
            t.trade_id,
            t.side,
            t.price,
            t.size,
            t.time,
            None if t.source == "rest" else t.trade_id * 7,
            None if t.source == "rest" else f"maker-{t.trade_id}",
            None if t.source == "rest" else f"taker-{t.trade_id}",
            t.source,
            t.time,
            PRODUCTS.index(t.product),
            t.trade_id,
        )
        for t in trades
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO `{database}`.`trade` ({TRADE_COLUMNS}) VALUES ({', '.join(['%s'] * 13)})",
            rows,
        )


def tape_of(trades: Iterable[TapeTrade], product: str) -> list[TapeTrade]:
    return sorted((t for t in trades if t.product == product), key=lambda t: t.order_key)


def edges(
    trades: list[TapeTrade], product: str, start: datetime, end: datetime
) -> tuple[int | None, int | None]:
    """The ids [low, high] a window spans (see analysis/completeness.py), by brute force."""
    tape = tape_of(trades, product)
    before = [t for t in tape if t.time < start]
    inside = [t for t in tape if start <= t.time < end]
    after = [t for t in tape if t.time >= end]
    low = before[-1].trade_id + 1 if before else (inside[0].trade_id if inside else None)
    high = after[0].trade_id - 1 if after else (inside[-1].trade_id if inside else None)
    if low is None or high is None or low > high:
        return None, None
    return low, high


def completeness(
    trades: list[TapeTrade], product: str, start: datetime, end: datetime, limit: int = 100
) -> dict[str, object]:
    low, high = edges(trades, product, start, end)
    if low is None or high is None:
        return {
            "first_trade_id": None,
            "last_trade_id": None,
            "missing": 0,
            "holes": [],
            "repaired": 0,
        }
    stored = {t.trade_id: t for t in trades if t.product == product}
    missing = [i for i in range(low, high + 1) if i not in stored]
    holes: list[list[int]] = []
    for i in missing:
        if holes and holes[-1][1] == i - 1:
            holes[-1][1] = i
        else:
            holes.append([i, i])
    repaired = sum(1 for i in range(low, high + 1) if i in stored and stored[i].source == "rest")
    return {
        "first_trade_id": low,
        "last_trade_id": high,
        "missing": len(missing),
        "holes": holes[:limit],
        "repaired": repaired,
    }


def covers(trades: list[TapeTrade], product: str, start: datetime, end: datetime) -> bool:
    """The tape holds a trade before and after [start, end) and every id between them."""
    tape = tape_of(trades, product)
    before = [t for t in tape if t.time < start]
    after = [t for t in tape if t.time >= end]
    if not before or not after:
        return False
    ids = {t.trade_id for t in tape}
    return all(i in ids for i in range(before[-1].trade_id + 1, after[0].trade_id))


def candle(members: Sequence[Tick | TapeTrade], bucket: int) -> list[str]:
    """[time, low, high, open, close, volume] as exact texts; open/close by time, then id."""
    ordered = sorted(members, key=lambda m: m.order_key)
    prices = [Decimal(m.price) for m in ordered]
    with localcontext() as context:
        context.prec = 100
        volume = sum((Decimal(m.size) for m in ordered), Decimal(0))
    first, last = text(prices[0]), text(prices[-1])
    return [str(bucket), text(min(prices)), text(max(prices)), first, last, text(volume)]


def mixed_candles(
    ticks: list[Tick],
    trades: list[TapeTrade],
    product: str,
    granularity: int,
    start: datetime,
    end: datetime,
) -> list[list[str]]:
    """Candles from the trades where the tape covers the bucket, from the ticks elsewhere."""
    result = []
    bucket = unix(start)
    while bucket < unix(end):
        b0 = EPOCH + timedelta(seconds=bucket)
        b1 = b0 + timedelta(seconds=granularity)
        source: Sequence[Tick | TapeTrade]
        if covers(trades, product, b0, b1):
            source = [t for t in trades if t.product == product and b0 <= t.time < b1]
        else:
            source = [t for t in ticks if t.product == product and b0 <= t.time < b1]
        if source:
            result.append(candle(source, bucket))
        bucket += granularity
    return result[::-1]
