"""Every SQL statement of the API: parameterised, bounded by time range and row limits.

Each names the index that serves it (FORCE INDEX), so the plan does not drift with table
statistics; tests/analysis/test_explain.py shows EXPLAIN of each. `order_product_time_price_size`
(product_id, time, price, last_size, + sequence from the primary key) covers the candle, stats
and coverage scans; `order_product_time` (product_id, time, + sequence) gives the latest tick by
(time, sequence) in one index step.
"""

from __future__ import annotations

from datetime import datetime

from analysis.db import Database, Row

# Seconds from year 0 to 1970-01-01: TO_SECONDS(time) minus this is Unix time (whole seconds).
UNIX_EPOCH_TO_SECONDS = 62167219200

# The first/last tick of a bucket: its earliest/latest time found by the aggregate, then one
# step in `order_product_time` (product_id, time, + sequence) for the lowest/highest sequence
# at that time. Cheaper than carrying strings through the aggregate, and exact on ties.
FIRST_AT = """(SELECT price FROM `order` FORCE INDEX (order_product_time)
  WHERE product_id = %(product)s AND time = {time} ORDER BY sequence LIMIT 1)"""
LAST_AT = """(SELECT price FROM `order` FORCE INDEX (order_product_time)
  WHERE product_id = %(product)s AND time = {time} ORDER BY sequence DESC LIMIT 1)"""

CANDLES = f"""
SELECT b.bucket, b.low, b.high, {FIRST_AT.format(time="b.first")},
       {LAST_AT.format(time="b.last")}, b.volume
FROM (
  SELECT (TO_SECONDS(time) DIV %(g)s) * %(g)s - {UNIX_EPOCH_TO_SECONDS} AS bucket,
         MIN(price) AS low, MAX(price) AS high, MIN(time) AS first, MAX(time) AS last,
         SUM(last_size) AS volume
  FROM `order` FORCE INDEX (order_product_time_price_size)
  WHERE product_id = %(product)s AND time >= %(start)s AND time < %(end)s
  GROUP BY bucket
) AS b
ORDER BY b.bucket DESC
"""

TICKER = """
SELECT trade_id, price, last_size, time, best_bid, best_ask, volume_24h, sequence
FROM `order` FORCE INDEX (order_product_time)
WHERE product_id = %(product)s
ORDER BY time DESC, sequence DESC
LIMIT 1
"""

STATS = f"""
SELECT {FIRST_AT.format(time="s.first")}, s.high, s.low, {LAST_AT.format(time="s.last")},
       s.volume
FROM (
  SELECT MAX(price) AS high, MIN(price) AS low, MIN(time) AS first, MAX(time) AS last,
         SUM(last_size) AS volume
  FROM `order` FORCE INDEX (order_product_time_price_size)
  WHERE product_id = %(product)s AND time >= %(start)s AND time < %(end)s
) AS s
"""

# One product's largest sizes, read from the covering index alone; only the winners'
# rows are then fetched by primary key.
LARGEST_ONE = """
(SELECT product_id, sequence, last_size, time
 FROM `order` FORCE INDEX (order_product_time_price_size)
 WHERE product_id = %s AND time >= %s
 ORDER BY last_size DESC, time DESC, sequence DESC
 LIMIT %s)
"""

LARGEST = """
SELECT o.product_id, o.sequence, o.trade_id, o.time, o.price, o.last_size, o.side
FROM ({parts}) AS top
JOIN `order` AS o ON o.product_id = top.product_id AND o.sequence = top.sequence
ORDER BY top.last_size DESC, top.time DESC, top.sequence DESC, top.product_id
LIMIT %s
"""

# Loose index scan: one step per product, however many rows it has.
PRODUCTS = """
SELECT product_id, MIN(time), MAX(time)
FROM `order` FORCE INDEX (order_product_time)
GROUP BY product_id
ORDER BY product_id
"""

# Index-only, but proportional to the product's rows: counted in the background (app.py).
COUNT = "SELECT COUNT(*) FROM `order` FORCE INDEX (order_product_time) WHERE product_id = %s"

EXISTS = "SELECT 1 FROM `order` FORCE INDEX (PRIMARY) WHERE product_id = %s LIMIT 1"

BOUNDS = """
SELECT MIN(time), MAX(time)
FROM `order` FORCE INDEX (order_product_time)
WHERE product_id = %(product)s AND time >= %(start)s AND time < %(end)s
"""

# Consecutive ticks further apart than the threshold, in index order.
GAPS = """
SELECT previous, time FROM (
  SELECT time, LAG(time) OVER (ORDER BY time, sequence) AS previous
  FROM `order` FORCE INDEX (order_product_time)
  WHERE product_id = %(product)s AND time >= %(start)s AND time < %(end)s
) AS ticks
WHERE previous IS NOT NULL AND time > previous + INTERVAL %(gap_us)s MICROSECOND
ORDER BY time
LIMIT %(limit)s
"""


def candles(
    db: Database, product: str, granularity: int, start: datetime, end: datetime
) -> list[Row]:
    args = {"g": granularity, "product": product, "start": start, "end": end}
    return db.rows(CANDLES, args)


def ticker(db: Database, product: str) -> Row | None:
    found = db.rows(TICKER, {"product": product})
    return found[0] if found else None


def stats(db: Database, product: str, start: datetime, end: datetime) -> Row:
    return db.rows(STATS, {"product": product, "start": start, "end": end})[0]


def largest_sql(products: int) -> str:
    return LARGEST.format(parts=" UNION ALL ".join([LARGEST_ONE] * products))


def largest(db: Database, products: list[str], since: datetime, limit: int) -> list[Row]:
    if not products:
        return []
    args: list[object] = []
    for product in products:
        args += [product, since, limit]
    return db.rows(largest_sql(len(products)), [*args, limit])


def products(db: Database) -> list[Row]:
    return db.rows(PRODUCTS)


def count(db: Database, product: str, timeout_s: float) -> int:
    return int(db.rows(COUNT, (product,), timeout_s)[0][0])


def exists(db: Database, product: str) -> bool:
    return bool(db.rows(EXISTS, (product,)))


def bounds(db: Database, product: str, start: datetime, end: datetime) -> Row:
    return db.rows(BOUNDS, {"product": product, "start": start, "end": end})[0]


def gaps(
    db: Database, product: str, start: datetime, end: datetime, gap_us: int, limit: int
) -> list[Row]:
    args = {"product": product, "start": start, "end": end, "gap_us": gap_us, "limit": limit}
    return db.rows(GAPS, args)
