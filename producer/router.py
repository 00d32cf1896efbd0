"""Frame routing: what one WebSocket frame is, and whether it goes on as a tick.

Parses only what routing and gap watching need (type, product_id, sequence, trade_id);
the consumer validates the rest. Pure functions and a small per-product state.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from shared.partitions import PartitionMap

# A ticker is about 450 bytes; anything this large is not one.
MAX_FRAME_BYTES = 64 * 1024

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


Route = Tick | Control | FeedError | Reject


def route(frame: bytes, partitions: PartitionMap) -> Route:
    """Classify one raw frame."""
    if len(frame) > MAX_FRAME_BYTES:
        return Reject(f"frame of {len(frame)} bytes is larger than any feed message")
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
    if kind != "ticker":
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


@dataclass(slots=True)
class Verdict:
    """What the sequence watch says about one tick."""

    publish: bool
    drop_reason: str | None = None  # "duplicate" or "out_of_order" when not published
    trade_gap: int = 0  # trade ids skipped just before this tick


PUBLISH = Verdict(True)


class SequenceWatch:
    """Per product: drop repeated/out-of-order ticks, count trade-id jumps.

    On the ticker channel `sequence` only increases (consecutive tickers skip the numbers
    of other events, so +1 can't be checked); `trade_id` + 1 is the next trade, and a jump
    means trades that were not reported as tickers (bursts batch) or were missed.
    """

    def __init__(self) -> None:
        self.last_sequence: dict[str, int] = {}
        self.last_trade_id: dict[str, int] = {}

    def check(self, tick: Tick) -> Verdict:
        if tick.sequence is not None:
            last = self.last_sequence.get(tick.product)
            if last is not None and tick.sequence <= last:
                return Verdict(False, "duplicate" if tick.sequence == last else "out_of_order")
            self.last_sequence[tick.product] = tick.sequence
        gap = 0
        if tick.trade_id is not None:
            last_trade = self.last_trade_id.get(tick.product)
            if last_trade is not None and tick.trade_id > last_trade + 1:
                gap = tick.trade_id - last_trade - 1
            if last_trade is None or tick.trade_id > last_trade:
                self.last_trade_id[tick.product] = tick.trade_id
        return Verdict(True, trade_gap=gap) if gap else PUBLISH
