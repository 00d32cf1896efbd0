"""The index hints of queries.py, dropped for an index the table does not have.

Every query names its index (FORCE INDEX) so the plan does not drift; on a table without
that index (schema.sql not applied, or the index dropped) the server refuses the hint with
error 1176 and the API would answer 503. Instead the hint is left out, the optimizer picks a
plan (slower, still right), and one warning names the missing index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

HINT = re.compile(r"\s*FORCE INDEX \((\w+)\)")

# The indexes queries.py relies on, with what each one makes fast.
EXPECTED = {
    "order_product_time_price_size": "candles, stats, largest trades (covering index)",
    "order_product_time": "ticker, products, coverage, counts",
    "trade_product_time_price_size": "candles from the trade tape (covering index)",
    "trade_product_time": "completeness and candle coverage: the trades next to a window",
}

# "Key '...' doesn't exist in table": a hint names an index the table has not got.
NO_SUCH_INDEX = 1176


class IndexHints:
    """Which hinted indexes exist; `apply` takes the hints to the missing ones out of a query."""

    def __init__(self) -> None:
        # (missing indexes, queries rewritten for them): one tuple, swapped whole, so a
        # request never pairs the new set with queries rewritten for the old one.
        self._state: tuple[frozenset[str], dict[str, str]] = (frozenset(), {})

    @property
    def missing(self) -> frozenset[str]:
        return self._state[0]

    def set_present(self, present: Iterable[str]) -> frozenset[str]:
        """Record the table's indexes; returns the expected ones that are newly missing."""
        missing = frozenset(EXPECTED) - frozenset(present)
        new = missing - self._state[0]
        self._state = (missing, {})
        return new

    def apply(self, sql: str) -> str:
        """`sql` without the FORCE INDEX of any missing index (memoised: queries are few)."""
        missing, rewritten = self._state
        if not missing:
            return sql
        found = rewritten.get(sql)
        if found is None:
            found = HINT.sub(lambda hint: "" if hint.group(1) in missing else hint.group(0), sql)
            rewritten[sql] = found
        return found
