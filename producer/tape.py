"""The trade tape: every `match` / `last_match` frame, raw, once per trade, to the trades topic.

With KAFKA_TRADES_TOPIC set the feed also subscribes to `matches`: Coinbase sends one
`last_match` per product on subscribe, then a `match` per trade, and per product `trade_id`
grows by exactly 1 per trade. Every connection delivers every trade (and a reconnect's
`last_match` repeats a trade already seen), so the first arrival of each (product, trade_id)
is published and the rest are counted repeats, as for ticks. A jump in trade_id is a hole in
the tape (both connections down, trades the server dropped): counted and logged here, filled
later from REST by `python -m repair`. A trade below the newest one is a late arrival: it is
published like any other (it may fill part of a hole counted before).
"""

from __future__ import annotations

from dataclasses import dataclass

from producer import metrics
from producer.publisher import Publisher
from producer.router import Match, RecentSequences
from shared.logs import RepeatedErrors, get_logger

log = get_logger(__name__)

# Trade ids remembered per product to recognise a repeat. Connections drift apart by
# seconds, a reconnect's last_match repeats the newest trade; 10,000 trades are minutes of
# the busiest product for about 1 MB each. An older repeat is absorbed by the table's key.
REMEMBERED_TRADES = 10_000


@dataclass(slots=True)
class TradeVerdict:
    """What the ledger says about one trade. Treat as a value."""

    publish: bool  # False only for a trade id of this product already published
    missing: int = 0  # trade ids skipped just before this one: a hole in the tape
    late: bool = False  # below the product's newest trade id


NEW = TradeVerdict(True)
LATE = TradeVerdict(True, late=True)
REPEATED = TradeVerdict(False)


class TradeLedger:
    """Per product: the trade ids published recently, and the newest one."""

    def __init__(self, remembered: int = REMEMBERED_TRADES) -> None:
        self.remembered = remembered
        self.recent: dict[str, RecentSequences] = {}
        self.newest: dict[str, int] = {}

    def check(self, product: str, trade_id: int) -> TradeVerdict:
        recent = self.recent.get(product)
        if recent is None:
            recent = self.recent[product] = RecentSequences(self.remembered)
        if not recent.add(trade_id):
            return REPEATED
        newest = self.newest.get(product)
        if newest is None or trade_id == newest + 1:
            self.newest[product] = trade_id
            return NEW
        if trade_id < newest:
            return LATE
        self.newest[product] = trade_id
        return TradeVerdict(True, missing=trade_id - newest - 1)


class TradeTape:
    """What happens to each match frame (on the event loop, never blocking)."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.ledger = TradeLedger()
        # A hole is worth a line (repair has work), but a feed dropping every other trade
        # must not write a line per trade: one per product per interval, with the count.
        self._holes = RepeatedErrors(
            log, "trade ids missing on the matches stream; repair fills the hole", 10.0, "warning"
        )

    def on_match(self, match: Match, frame: bytes, received_ns: int) -> None:
        product = match.product
        verdict = self.ledger.check(product, match.trade_id)
        if not verdict.publish:
            metrics.TRADES_REPEATED.add(product)  # another connection delivered it first
            return
        metrics.TRADES_IN.add(product)
        if verdict.missing:
            metrics.TRADE_HOLES.add(product)
            metrics.TRADE_IDS_MISSING.add(product, verdict.missing)
            first = match.trade_id - verdict.missing
            self._holes.add(product, first_missing=first, last_missing=match.trade_id - 1)
        elif verdict.late:
            metrics.TRADES_LATE.add(product)
        self.publisher.publish_trade(frame, product, match.partition, received_ns)

    def flush(self) -> None:
        """Log the holes the last interval held back (at shutdown)."""
        self._holes.flush()
