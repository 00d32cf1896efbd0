"""One pass over the holes of every product: fetch the ids still missing, publish, confirm.

A hole (first, last) is fetched newest first: `after=last+1&limit=n` with n the ids still
missing below the cursor (at most 1000), then `after=` the page's oldest id (what its CB-AFTER
header carries; taken from the body, which is what gets published), until `first`.
So a hole of n ids takes ⌈n/1000⌉ requests and never asks for a stored id. Only ids inside
the hole and below the cursor are published, so a page that brings other trades (an
exchange that ignores `limit`, trades made meanwhile) publishes nothing twice. Ids Kafka
acknowledged are remembered for the run: a hole the consumer has not written yet is not
fetched again (Kafka is the source of truth; the consumer will store them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from repair import metrics
from repair.holes import Hole, Tape
from repair.publish import TradePublisher, Undelivered
from repair.ranges import IdRanges
from repair.rest import MAX_LIMIT, RestClient
from shared.logs import get_logger

log = get_logger(__name__)


@dataclass
class Summary:
    holes: int = 0  # holes found (a hole seen again in a later pass counts once)
    missing: int = 0  # ids in them
    fetched: int = 0  # trades published and acknowledged
    unavailable: int = 0  # missing ids the exchange did not serve
    seen: set[tuple[str, int]] = field(default_factory=set)  # (product, first id) counted


class Repairer:
    def __init__(self, tape: Tape, rest: RestClient, publisher: TradePublisher) -> None:
        self.tape = tape
        self.rest = rest
        self.publisher = publisher
        self.summary = Summary()
        self.handled: dict[str, IdRanges] = {}  # acknowledged by Kafka, or not served
        self.unavailable: dict[str, IdRanges] = {}  # not served

    def repair(self, product: str, holes: list[Hole]) -> None:
        """Fetch and publish what `holes` still miss; returns once Kafka acknowledged it."""
        handled = self.handled.setdefault(product, IdRanges())
        for hole in holes:
            if (product, hole.first) not in self.summary.seen:
                self.summary.seen.add((product, hole.first))
                self.summary.holes += 1
                self.summary.missing += hole.size
            for part in handled.missing(hole):
                self._fetch(product, part, handled)

    def _fetch(self, product: str, hole: Hole, handled: IdRanges) -> None:
        cursor, done = hole.last + 1, []
        log.info("repairing hole", product=product, first=hole.first, last=hole.last)
        while cursor > hole.first:
            page = self.rest.page(product, cursor, min(MAX_LIMIT, cursor - hole.first))
            ids_seen: set[int] = set()
            wanted = []
            for trade in page.trades:
                if hole.first <= trade.trade_id < cursor and trade.trade_id not in ids_seen:
                    ids_seen.add(trade.trade_id)
                    wanted.append(trade)
            if not wanted:  # the exchange has none of them (any more)
                self._unavailable(product, Hole(hole.first, cursor - 1), handled)
                break
            self.publisher.publish(product, wanted, page.received_ns)
            lowest = min(ids_seen)
            done.append((Hole(lowest, cursor - 1), len(wanted)))
            cursor = lowest
        try:
            self.publisher.confirm()
        except Undelivered as exc:
            log.warning("Kafka did not acknowledge repaired trades; retried later", error=str(exc))
            return
        for part, count in done:
            handled.add(part.first, part.last)
            self.summary.fetched += count
            metrics.REPAIRED.labels(product=product).inc(count)

    def _unavailable(self, product: str, hole: Hole, handled: IdRanges) -> None:
        log.error(
            "the exchange does not serve these trades; the hole stays",
            product=product,
            first=hole.first,
            last=hole.last,
        )
        handled.add(hole.first, hole.last)
        self.unavailable.setdefault(product, IdRanges()).add(hole.first, hole.last)
        self.summary.unavailable += hole.size
        metrics.UNAVAILABLE.labels(product=product).inc(hole.size)

    def open_holes(self, product: str, start: int, end: int) -> list[Hole]:
        """Holes in [start, end] the table still shows (closed ones are gone)."""
        return [hole for hole, _ in self.tape.holes(product, start) if hole.last < end]

    def report(self, started: float) -> dict[str, object]:
        counts = self.rest.counts
        return {
            "holes": self.summary.holes,
            "missing": self.summary.missing,
            "trades_fetched": self.summary.fetched,
            "unavailable": self.summary.unavailable,
            "requests": counts.requests,
            "throttled_429": counts.throttled,
            "retried": dict(counts.failed),
            "seconds": round(time.monotonic() - started, 3),
        }
