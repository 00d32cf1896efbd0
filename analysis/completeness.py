"""How complete the trade tape is over a time window, proven by trade id.

Per product, Coinbase's `trade_id` rises by exactly 1 per trade and trade times rise with
it, so a trade missing from the tape has a time between its stored neighbours'. The window
[start, end) therefore spans the ids from just after the last trade stored before `start` to
just before the first trade stored at or after `end`: the holes next to its edges are
counted, since their trades may lie inside it. Where the tape has no trade before the window
(it starts inside) or none after (it ends inside, e.g. at the live end), the window's own
first / last stored trade bounds the range instead: nothing can be proven beyond it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from analysis import tape_queries
from analysis.db import Database


@dataclass(frozen=True)
class Completeness:
    first_trade_id: int | None
    last_trade_id: int | None
    missing: int  # every missing id of [first, last], listed in `holes` or not
    holes: list[tuple[int, int]]  # the oldest `limit` runs of missing ids, (first, last)
    repaired: int  # stored trades of [first, last] that came from the REST history


NOTHING = Completeness(None, None, 0, [], 0)


def id_range(
    before: int | None, first: int | None, last: int | None, after: int | None
) -> tuple[int, int] | None:
    """The ids the window may hold, from its edges (tape_queries.edges), or None."""
    low = before + 1 if before is not None else first
    high = after - 1 if after is not None else last
    if low is None or high is None or low > high:
        return None
    return low, high


def measure(db: Database, product: str, start: datetime, end: datetime, limit: int) -> Completeness:
    span = id_range(*tape_queries.edges(db, product, start, end))
    if span is None:
        return NOTHING
    low, high = span
    stored, repaired = tape_queries.counts(db, product, low, high)
    missing = high - low + 1 - stored
    found: list[tuple[int, int]] = []
    # The hole scan (LAG over the key) costs about three counts: only when a hole exists.
    if missing:
        # One id beyond each end: the stored neighbours, so that edge holes show as gaps.
        rows = tape_queries.holes(db, product, max(low - 1, 0), high + 1, limit)
        found = [(int(a), int(b)) for a, b in rows]
    return Completeness(low, high, missing, found, repaired)
