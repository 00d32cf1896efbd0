"""Frame routing: what one WebSocket frame is, and whether it goes on as a tick or a trade.

Parses only what routing and gap watching need (type, product_id, sequence, trade_id);
the consumer validates the rest. Pure functions and a small per-product state. Size is no
reason to reject: a valid ticker with a large extra field is a tick (the feed bounds a
frame by FEED_MAX_FRAME_BYTES, and producer/oversize.py says what happens to big ones).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import orjson

from shared.partitions import PartitionMap

# The results below are plain slotted dataclasses, not frozen ones: they are made for every
# frame, and a frozen dataclass costs three times as much to build. Treat them as values.


@dataclass(slots=True)
class Tick:
    """A ticker frame for a configured product: published raw to its partition."""

    product: str
    partition: int
    sequence: int | None  # absent on some subscribe-time snapshots
    trade_id: int | None  # absent on snapshots


@dataclass(slots=True)
class Match:
    """A `match` / `last_match` frame of a configured product: published raw to the tape."""

    kind: str  # "match" or "last_match"
    product: str
    partition: int
    trade_id: int


@dataclass(slots=True)
class Control:
    """A frame that is handled, never published: subscriptions, heartbeat, unknown types."""

    type: str
    product: str | None = None


@dataclass(slots=True)
class FeedError:
    """`{"type":"error"}` from the server: the subscription is not in force; reconnect."""

    message: str


@dataclass(slots=True)
class Reject:
    """A frame that can't be routed: it goes to the dead-letter topic with this reason."""

    reason: str
    product: str | None = None


Route = Tick | Match | Control | FeedError | Reject

MATCH_TYPES = ("match", "last_match")  # a tuple: `in` compares, so any JSON type is safe


def route(frame: bytes, partitions: PartitionMap, matches: bool = False) -> Route:
    """Classify one raw frame; `match` / `last_match` frames are trades only with `matches`
    (the tape on), otherwise control frames like any type the producer does not publish."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return Reject("not JSON")
    if not isinstance(message, dict):
        return Reject("not a JSON object")
    kind = message.get("type")
    product = message.get("product_id")
    if kind == "error":
        return FeedError(f"{message.get('message')}: {message.get('reason')}")
    if kind != "ticker":  # tickers first: the tape costs the ticker path nothing
        if matches and kind in MATCH_TYPES:
            return _route_match(kind, product, message.get("trade_id"), partitions)
        return Control(str(kind), product if isinstance(product, str) else None)
    if not isinstance(product, str) or not product:
        return Reject("ticker without product_id")
    partition = partitions.partition(product)
    if partition is None:
        return Reject(f"ticker for unknown product {product[:40]!r}", product[:40])
    sequence, trade_id = message.get("sequence"), message.get("trade_id")
    for name, value in (("sequence", sequence), ("trade_id", trade_id)):
        if value is not None and (type(value) is not int or value < 0):
            return Reject(f"ticker {name} is not a non-negative integer", product)
    return Tick(product, partition, sequence, trade_id)


def _route_match(kind: str, product: object, trade_id: object, partitions: PartitionMap) -> Route:
    # trade_id is what the tape dedupes on and proves complete by: a match without a usable
    # one is a dead letter. Prices, sizes and times are the consumer's to validate.
    if not isinstance(product, str) or not product:
        return Reject(f"{kind} without product_id")
    partition = partitions.partition(product)
    if partition is None:
        return Reject(f"{kind} for unknown product {product[:40]!r}", product[:40])
    if type(trade_id) is not int or trade_id < 0:
        return Reject(f"{kind} trade_id is not a non-negative integer", product)
    return Match(kind, product, partition, trade_id)


@dataclass(slots=True)
class Verdict:
    """What the sequence ledger says about one tick. Every tick is published but repeats."""

    publish: bool  # False only for an exact repeat of a (product, sequence) already published
    anomaly: str | None = None  # "out_of_order", "backward_jump" or "forward_jump"
    previous_sequence: int | None = None  # the sequence the anomaly is measured against
    trade_gap: int = 0  # trade ids skipped just before this tick


PUBLISH = Verdict(True)
REPEAT = Verdict(False)

# Sequences count every order event of a product, so consecutive tickers skip thousands of
# numbers in a busy second. A move of more than this is a jump (a reset after exchange
# maintenance, or a stray frame), not a late arrival.
SEQUENCE_JUMP = 10_000_000

# How many recent sequences per product are remembered to recognise an exact repeat. Live
# connections drift apart by seconds (hundreds of ticks even in bursts); 10,000 is minutes
# of the busiest product for about 1 MB each. An older repeat is absorbed by the table's key.
REMEMBERED_SEQUENCES = 10_000


class RecentSequences:
    """A bounded set: the last `capacity` sequences added, oldest forgotten first."""

    __slots__ = ("_members", "_order", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._members: set[int] = set()
        self._order: deque[int] = deque()

    def add(self, sequence: int) -> bool:
        """Remember `sequence`; False if it was already remembered."""
        if sequence in self._members:
            return False
        self._members.add(sequence)
        self._order.append(sequence)
        if len(self._order) > self.capacity:
            self._members.discard(self._order.popleft())
        return True

    def __len__(self) -> int:
        return len(self._members)


# How many published tick frames are remembered by their bytes. Hot-hot connections deliver
# the same bytes milliseconds apart; 2,000 frames are seconds of the busiest feed, ~1 MB.
REMEMBERED_FRAMES = 2_000


class RecentFrames:
    """The last `capacity` published tick frames, by their bytes, with their product.

    With several connections half the frames are another connection's copy of a published
    tick. Recognising the bytes (one hash) spares parsing them; a copy that differs or comes
    later than the window still meets the sequence check.
    """

    __slots__ = ("_order", "_products", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._products: dict[bytes, str] = {}
        self._order: deque[bytes] = deque()

    def product(self, frame: bytes) -> str | None:
        """The product of this exact frame if it was published recently, else None."""
        return self._products.get(frame)

    def add(self, frame: bytes, product: str) -> None:
        if not self.capacity:
            return
        self._products[frame] = product
        self._order.append(frame)
        if len(self._order) > self.capacity:
            self._products.pop(self._order.popleft(), None)

    def __len__(self) -> int:
        return len(self._products)


class SequenceWatch:
    """Per product: skip exact repeats, classify sequence anomalies, count trade-id jumps.

    Coinbase may deliver tickers out of order and sequences may reset, so a sequence below
    the previous one is a real, late (or renumbered) trade: it is published and counted,
    never dropped. Only a (product, sequence) already published is skipped: with several
    connections every tick arrives once per connection, and the first arrival wins.
    `trade_id` + 1 is the next trade; a jump means trades that were batched into one ticker
    or missed.
    """

    def __init__(self, remembered: int = REMEMBERED_SEQUENCES) -> None:
        self.remembered = remembered
        self.recent: dict[str, RecentSequences] = {}
        self.last_sequence: dict[str, int] = {}
        self.last_trade_id: dict[str, int] = {}

    def check(self, tick: Tick) -> Verdict:
        anomaly, previous = None, None
        if tick.sequence is not None:
            recent = self.recent.get(tick.product)
            if recent is None:
                recent = self.recent[tick.product] = RecentSequences(self.remembered)
            if not recent.add(tick.sequence):
                return REPEAT
            previous = self.last_sequence.get(tick.product)
            anomaly = _anomaly(previous, tick.sequence)
            self.last_sequence[tick.product] = tick.sequence
        gap = self._trade_gap(tick)
        if anomaly is None and not gap:
            return PUBLISH
        return Verdict(True, anomaly, previous if anomaly else None, gap)

    def _trade_gap(self, tick: Tick) -> int:
        if tick.trade_id is None:
            return 0
        last_trade = self.last_trade_id.get(tick.product)
        if last_trade is None or tick.trade_id > last_trade:
            self.last_trade_id[tick.product] = tick.trade_id
        if last_trade is not None and tick.trade_id > last_trade + 1:
            return tick.trade_id - last_trade - 1
        return 0


def _anomaly(previous: int | None, sequence: int) -> str | None:
    if previous is None or previous < sequence <= previous + SEQUENCE_JUMP:
        return None
    if sequence > previous:
        return "forward_jump"
    return "backward_jump" if previous - sequence > SEQUENCE_JUMP else "out_of_order"
