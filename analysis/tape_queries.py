"""Every SQL statement over the trade tape (table `trade`): parameterised and bounded.

Like queries.py, each names its index. The primary key (product_id, trade_id) serves the
cursor pages and the hole scan; `trade_product_time` (product_id, time, + trade_id) finds the
trades next to a time window in one index step; the covering `trade_product_time_price_size`
(schema.sql) serves the candle scan from the index alone. test_explain.py shows each plan.
"""

from __future__ import annotations

from datetime import datetime

from analysis.db import Database, Row
from analysis.queries import UNIX_EPOCH_TO_SECONDS

PAGE_COLUMNS = "SELECT trade_id, time, price, size, side FROM `trade` FORCE INDEX (PRIMARY)"

# Coinbase's pages: newest first; `after` = older than the cursor, `before` = newer.
TRADES_LATEST = f"""{PAGE_COLUMNS}
WHERE product_id = %(product)s
ORDER BY trade_id DESC LIMIT %(limit)s"""

TRADES_OLDER = f"""{PAGE_COLUMNS}
WHERE product_id = %(product)s AND trade_id < %(cursor)s
ORDER BY trade_id DESC LIMIT %(limit)s"""

# The page just newer than the cursor, read upwards (reversed to newest first in Python).
TRADES_NEWER = f"""{PAGE_COLUMNS}
WHERE product_id = %(product)s AND trade_id > %(cursor)s
ORDER BY trade_id LIMIT %(limit)s"""

TAPE_EXISTS = "SELECT 1 FROM `trade` FORCE INDEX (PRIMARY) WHERE product_id = %s LIMIT 1"

STEP = """(SELECT trade_id FROM `trade` FORCE INDEX (trade_product_time)
  WHERE product_id = %(product)s AND {where} ORDER BY time {way}, trade_id {way} LIMIT 1)"""

# Around [start, end): the last trade stored before it, its first and last stored trade,
# the first stored after it. Four index steps, whatever the window holds.
TAPE_EDGES = "SELECT " + ",\n".join(
    [
        STEP.format(where="time < %(start)s", way="DESC"),
        STEP.format(where="time >= %(start)s AND time < %(end)s", way="ASC"),
        STEP.format(where="time >= %(start)s AND time < %(end)s", way="DESC"),
        STEP.format(where="time >= %(end)s", way="ASC"),
    ]
)

# Stored trades of an id range, and how many of them came from the REST history.
TAPE_COUNTS = """
SELECT COUNT(*), COALESCE(SUM(source = 'rest'), 0)
FROM `trade` FORCE INDEX (PRIMARY)
WHERE product_id = %(product)s AND trade_id BETWEEN %(low)s AND %(high)s
"""

# Holes: consecutive stored ids more than 1 apart, in primary-key order (no sort).
TAPE_HOLES = """
SELECT previous + 1, trade_id - 1 FROM (
  SELECT trade_id, LAG(trade_id) OVER (ORDER BY trade_id) AS previous
  FROM `trade` FORCE INDEX (PRIMARY)
  WHERE product_id = %(product)s AND trade_id BETWEEN %(low)s AND %(high)s
) AS ids
WHERE trade_id > previous + 1
ORDER BY trade_id
LIMIT %(limit)s
"""

FIRST_AT = """(SELECT price FROM `trade` FORCE INDEX (trade_product_time)
  WHERE product_id = %(product)s AND time = {time} ORDER BY trade_id {way} LIMIT 1)"""

# As queries.CANDLES over trades, open/close by (time, trade_id), plus each bucket's trade
# count and id range, from which candle_sources.py decides whether the tape covers it.
TRADE_CANDLES = f"""
SELECT b.bucket, b.low, b.high, {FIRST_AT.format(time="b.first", way="ASC")},
       {FIRST_AT.format(time="b.last", way="DESC")}, b.volume, b.trades, b.low_id, b.high_id
FROM (
  SELECT (TO_SECONDS(time) DIV %(g)s) * %(g)s - {UNIX_EPOCH_TO_SECONDS} AS bucket,
         MIN(price) AS low, MAX(price) AS high, MIN(time) AS first, MAX(time) AS last,
         SUM(size) AS volume, COUNT(*) AS trades, MIN(trade_id) AS low_id,
         MAX(trade_id) AS high_id
  FROM `trade` FORCE INDEX (trade_product_time_price_size)
  WHERE product_id = %(product)s AND time >= %(start)s AND time < %(end)s
  GROUP BY bucket
) AS b
ORDER BY b.bucket
"""


def page(
    db: Database, product: str, limit: int, before: int | None, after: int | None
) -> list[Row]:
    """One page of trades, newest first."""
    args = {"product": product, "limit": limit, "cursor": after if after is not None else before}
    if after is not None:
        return db.rows(TRADES_OLDER, args)
    if before is not None:
        return db.rows(TRADES_NEWER, args)[::-1]
    return db.rows(TRADES_LATEST, args)


def exists(db: Database, product: str) -> bool:
    return bool(db.rows(TAPE_EXISTS, (product,)))


def edges(db: Database, product: str, start: datetime, end: datetime) -> Row:
    """(last before, first in, last in, first after) the window: trade ids or None."""
    return db.rows(TAPE_EDGES, {"product": product, "start": start, "end": end})[0]


def counts(db: Database, product: str, low: int, high: int) -> tuple[int, int]:
    stored, rest = db.rows(TAPE_COUNTS, {"product": product, "low": low, "high": high})[0]
    return int(stored), int(rest)


def holes(db: Database, product: str, low: int, high: int, limit: int) -> list[Row]:
    """Runs of missing ids, each (first, last), between stored ids of [low, high]."""
    args = {"product": product, "low": low, "high": high, "limit": limit}
    return db.rows(TAPE_HOLES, args)


def candles(
    db: Database, product: str, granularity: int, start: datetime, end: datetime
) -> list[Row]:
    args = {"g": granularity, "product": product, "start": start, "end": end}
    return db.rows(TRADE_CANDLES, args)
