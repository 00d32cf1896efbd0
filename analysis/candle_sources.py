"""Candles from the trade tape where it covers the bucket, from the ticker archive elsewhere.

A bucket [b, b + granularity) is covered when the tape holds a trade before it and a trade
after it (by time) and every trade id between the last one before and the first one after
is stored. Trade ids rise by exactly 1 per trade and times rise with them, so every trade of
a covered bucket is stored: its volume is the exact sum of trade sizes, its open/close the
first/last trade by (time, trade_id). Any other bucket (a hole, before the tape starts, the
live bucket, which has no trade after it yet) comes whole from `order` ticks as before;
a bucket is never mixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from analysis import queries, tape_queries
from analysis.db import Database, Row
from analysis.params import EPOCH, CandleRange

Candle = tuple[int, str, str, str, str, str]


@dataclass(frozen=True)
class Candles:
    rows: list[Candle]  # newest first
    from_trades: int
    from_ticks: int


def starts(span: CandleRange) -> list[int]:
    """Every bucket start of the range, in Unix seconds, oldest first."""
    first = int((span.start - EPOCH).total_seconds())
    last = int((span.end - EPOCH).total_seconds())
    return list(range(first, last, span.granularity))


def covered(
    buckets: list[int], trade_rows: list[Row], before: int | None, after: int | None
) -> set[int]:
    """The buckets the tape covers, from each bucket's (count, lowest id, highest id)."""
    by_bucket = {int(row[0]): (int(row[6]), int(row[7]), int(row[8])) for row in trade_rows}
    # The first trade id stored after each bucket: walk from the newest.
    next_id: dict[int, int | None] = {}
    following = after
    for bucket in reversed(buckets):
        next_id[bucket] = following
        if bucket in by_bucket:
            following = by_bucket[bucket][1]
    found: set[int] = set()
    previous = before
    for bucket in buckets:
        count, low, high = by_bucket.get(bucket, (0, 0, 0))
        following = next_id[bucket]
        if previous is not None and following is not None:
            # Every id between the neighbours is stored, and the bucket's ids lie between.
            between = count == 0 or previous < low <= high < following
            if between and following - previous - 1 == count:
                found.add(bucket)
        if count:
            previous = high
    return found


def candles(db: Database, product: str, span: CandleRange, tape: bool) -> Candles:
    """The range's candles; `tape` False (no readable `trade`) means ticks only."""
    buckets = starts(span)
    trade_rows: list[Row] = []
    done: set[int] = set()
    if tape:
        trade_rows = tape_queries.candles(db, product, span.granularity, span.start, span.end)
        before, _, _, after = tape_queries.edges(db, product, span.start, span.end)
        done = covered(buckets, trade_rows, before, after)
    rows: list[Candle] = [tuple(row[:6]) for row in trade_rows if int(row[0]) in done]
    from_trades = len(rows)
    ticks: list[Row] = []
    for first, last in uncovered_runs(buckets, done):
        start = EPOCH + timedelta(seconds=first)
        end = EPOCH + timedelta(seconds=last + span.granularity)
        found = queries.candles(db, product, span.granularity, start, end)
        ticks += [row for row in found if int(row[0]) not in done]
    rows += ticks
    rows.sort(key=lambda row: row[0], reverse=True)
    return Candles(rows, from_trades, len(ticks))


# More stretches of uncovered buckets than this are read from ticks in one query.
MAX_TICK_QUERIES = 4


def uncovered_runs(buckets: list[int], done: set[int]) -> list[tuple[int, int]]:
    """(first, last) bucket of each stretch the tape does not cover, so that only those
    stretches are read from ticks (typically a hole and the live bucket); beyond
    MAX_TICK_QUERIES stretches, one from the first to the last."""
    runs: list[list[int]] = []
    for index, bucket in enumerate(buckets):
        if bucket in done:
            continue
        if runs and runs[-1][1] == buckets[index - 1]:
            runs[-1][1] = bucket
        else:
            runs.append([bucket, bucket])
    if len(runs) > MAX_TICK_QUERIES:
        return [(runs[0][0], runs[-1][1])]
    return [(first, last) for first, last in runs]
