"""The trade ticks of one product in the order the market sends them, sequence faults included."""

from __future__ import annotations

from .config import SimulatorConfig
from .frames import ProductState
from .trades import Trade

# A stray frame's sequence: far above any real one (the producer once dropped
# every later tick of the product after such a frame).
STRAY_SEQUENCE = 900_000_000_000
# Where a product's sequence restarts after a reset (as after exchange maintenance).
RESET_SEQUENCE = 1_000


class Tape:
    """One product's walk with the configured sequence faults applied.

    Every frame is a real, distinct trade tick; the faults only change the
    order (out_of_order_every), or the sequence numbers (a reset, a stray).
    The faults act on tickers only: a batch's trades (its matches) are made
    and sent when it happens, in trade id order, with the product's sequence.
    """

    def __init__(self, state: ProductState, config: SimulatorConfig) -> None:
        self.state = state
        self.made = 0  # trade ticks generated (what `count` limits)
        self._count = config.count
        self._late_every = config.out_of_order_every
        self._reset_after = config.sequence_reset_after
        self._stray_after = config.stray_sequence_after
        self._held: bytes | None = None

    def exhausted(self) -> bool:
        return self._count is not None and self.made >= self._count and self._held is None

    def next(self, now_ns: int) -> tuple[list[Trade], list[bytes]]:
        """One more trade tick: the trades it made (none once `count` is reached) and
        the ticker frames to send (none, one, or two when one was held back)."""
        if self._count is not None and self.made >= self._count:
            held, self._held = self._held, None
            return [], [held] if held is not None else []
        self.made += 1
        n = self.made
        if n - 1 == self._reset_after:
            self.state.sequence = RESET_SEQUENCE
        sequence = STRAY_SEQUENCE if n - 1 == self._stray_after else None
        trades, frame = self.state.next_batch(now_ns, sequence)
        if self._held is not None:
            held, self._held = self._held, None
            return trades, [frame, held]  # the held tick arrives after a later one
        last = self._count is not None and n >= self._count
        if self._late_every is not None and n % self._late_every == 0 and not last:
            self._held = frame
            return trades, []
        return trades, [frame]
