"""`ticks` of GET /products: exact row counts per product, kept fresh in the background."""

from __future__ import annotations

import threading
import time

from analysis import queries
from analysis.db import Database
from shared.logs import get_logger

# A count reads one index entry per row of the product: it may take long on a big archive.
COUNT_TIMEOUT_S = 300.0
log = get_logger("analysis")


class TickCounts:
    """`ticks` per product: an index COUNT, proportional to the product's rows, so it is
    recounted in the background once older than `max_age_s`; requests get the last count
    and wait only for a product's very first one. The count may run COUNT_TIMEOUT_S."""

    def __init__(self, db: Database, max_age_s: float) -> None:
        self._db = db
        self._max_age_s = max_age_s
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()  # one count at a time: they are the heaviest reads
        self._refreshing: set[str] = set()

    def get(self, product: str) -> int:
        cached = self._counts.get(product)
        if cached is None:
            return self._count(product)
        if time.monotonic() - cached[1] >= self._max_age_s and product not in self._refreshing:
            self._refreshing.add(product)
            threading.Thread(target=self._refresh, args=(product,), daemon=True).start()
        return cached[0]

    def _refresh(self, product: str) -> None:
        try:
            self._count(product)
        except Exception as exc:  # the last count stays; the next request tries again
            log.warning("recount failed", product=product, error=str(exc))
        finally:
            self._refreshing.discard(product)

    def _count(self, product: str) -> int:
        with self._lock:
            found = queries.count(self._db, product, COUNT_TIMEOUT_S)
            self._counts[product] = (found, time.monotonic())
            return found
