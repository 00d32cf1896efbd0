"""The market: one clock per product, broadcast to every subscribed connection, and the record.

Connections (sessions) register as listeners; the market never imports them.
What it generates is recorded once, whoever received it: that is the ground
truth a test compares the table with. Each trade tick is a batch of trades:
their `match` frames go out first, then the batch's ticker; every trade is
kept in its product's history, which the REST endpoint pages through.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

from .config import SimulatorConfig
from .faults import malformed_frame
from .frames import ProductState
from .replay import ReplayLine, load_replay
from .tape import Tape
from .trades import Trade, TradeHistory

# (product id or None for product-less replay lines, frame, its trade if it is a match).
Item = tuple[str | None, bytes, Trade | None]

# Frames generated per round when unpaced: enough to amortise a wakeup, few
# enough that a slow reader stops the clock quickly.
BATCH = 32


class Listener(Protocol):
    """What the market needs of a connection."""

    def wants(self, product: str | None, match: bool) -> bool:
        """Whether this connection takes a frame of `product` (a match or a ticker)."""

    def push(self, items: list[Item]) -> None: ...

    def backlog(self) -> int: ...

    def request_drop(self) -> None: ...


class Market:
    """Market state, the clock task and everything tests inspect (thread-safe copies)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = cfg = config
        self._states = {p: ProductState(p, cfg.seed) for p in cfg.products}
        self._tapes = {p: Tape(s, cfg) for p, s in self._states.items()}
        self._histories = {p: TradeHistory(cfg.trade_history) for p in cfg.products}
        for product, state in self._states.items():
            self._histories[product].add([state.last_trade])
        self.replay: list[ReplayLine] | None = None
        known = set(cfg.products)
        if cfg.replay_file is not None:
            self.replay = load_replay(cfg.replay_file)
            # Products of the capture are subscribable even if not configured.
            known.update(line.product_id for line in self.replay if line.product_id is not None)
        self.known_products: frozenset[str] = frozenset(known)
        self._replay_pos = 0
        self._replay_handed = 0  # lines handed out (paces a replay)
        self._lock = threading.Lock()  # guards what other threads read
        self._tickers: dict[str, list[bytes]] = {p: [] for p in sorted(known)}
        self._ticker_counts: dict[str, int] = dict.fromkeys(sorted(known), 0)
        # Per product, what at least one connection received, once, in first-write order.
        self._delivered: dict[str, dict[bytes, None]] = {p: {} for p in sorted(known)}
        self._delivered_trades: dict[str, set[int]] = {p: set() for p in cfg.products}
        self._malformed: list[bytes] = []
        self._malformed_index = 0
        self._subscribes: list[dict[str, Any]] = []
        self._started: dict[str, float] = {}  # product -> loop time of its first subscription
        self._replay_started: float | None = None
        self._listeners: list[Listener] = []  # in joining order: the first is the oldest
        self._changed = asyncio.Event()
        self._first_join = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle (event loop) ---------------------------------------------

    def start(self) -> None:
        if self.config.autostart and self.replay is None:
            now = asyncio.get_running_loop().time()
            with self._lock:
                self._started.update(dict.fromkeys(self.config.products, now))
        self._tasks.append(asyncio.create_task(self._clock()))
        if self.config.drop_one_every is not None:
            self._tasks.append(
                asyncio.create_task(self._drop_one_every(self.config.drop_one_every))
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # --- what sessions call (event loop) ------------------------------------

    def join(self, listener: Listener, products: list[str]) -> None:
        """A connection subscribed (again): it gets ticks from now on; clocks start."""
        if listener not in self._listeners:
            self._listeners.append(listener)
        self._first_join.set()
        now = asyncio.get_running_loop().time()
        with self._lock:
            for product in products:
                self._started.setdefault(product, now)
        if self._replay_started is None:
            self._replay_started = now
        self._changed.set()

    def leave(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
        self._changed.set()

    def room(self) -> None:
        """A listener's backlog went down: an unpaced clock may go on."""
        self._changed.set()

    def snapshot(self, product: str, with_sequence: bool) -> bytes:
        """The subscribe-time ticker of one connection (recorded as sent)."""
        data = self._states[product].snapshot(with_sequence)
        self._record([(product, data, None)])
        return data

    def last_match(self, product: str) -> Item:
        """The subscribe-time `last_match` of one connection: the product's newest trade."""
        trade = self._states[product].last_trade
        return (product, trade.frame("last_match"), trade)

    def heartbeat(self, product: str) -> bytes:
        return self._states[product].heartbeat(time.time_ns())

    def malformed(self, product: str) -> bytes:
        state = self._states.get(product) or next(iter(self._states.values()))
        data = malformed_frame(self._malformed_index, state.peek_ticker(time.time_ns()))
        self._malformed_index += 1
        return data

    def delivered(self, items: list[Item]) -> None:
        """Frames whose write to a connection completed (kept only with `record`)."""
        if not self.config.record:
            return
        with self._lock:
            for product, data, trade in items:
                if trade is not None:
                    self._delivered_trades[trade.product_id].add(trade.trade_id)
                elif product is not None:
                    self._delivered[product][data] = None

    def record_malformed(self, data: bytes) -> None:
        with self._lock:
            self._malformed.append(data)

    def record_subscribe(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._subscribes.append(message)

    # --- what tests inspect (any thread) --------------------------------------

    def sent_tickers(self) -> dict[str, list[bytes]]:
        """Per product, every ticker generated (snapshots included), in broadcast order."""
        with self._lock:
            return {p: list(frames) for p, frames in self._tickers.items()}

    def delivered_tickers(self) -> dict[str, list[bytes]]:
        """Per product, the tickers at least one connection got (a subset of sent_tickers())."""
        with self._lock:
            return {p: list(frames) for p, frames in self._delivered.items()}

    def ticker_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._ticker_counts)

    def trades(self) -> dict[str, list[Trade]]:
        """Per generated product, every trade made (kept), oldest first."""
        with self._lock:
            return {p: history.all() for p, history in self._histories.items()}

    def trade_counts(self) -> dict[str, int]:
        """Per generated product, trades made so far (the one before the start included)."""
        with self._lock:
            return {p: history.made for p, history in self._histories.items()}

    def delivered_trade_ids(self) -> dict[str, list[int]]:
        """Per generated product, ids of trades whose match or last_match frame reached
        at least one connection, ascending (kept only with `record`)."""
        with self._lock:
            return {p: sorted(ids) for p, ids in self._delivered_trades.items()}

    def trade_page(
        self, product: str, before: int | None, after: int | None, limit: int
    ) -> list[Trade]:
        """A REST page of `product`'s history, newest first (TradeHistory.page); [] for a
        product with no generated history (one only known from a replay file)."""
        with self._lock:
            history = self._histories.get(product)
            return [] if history is None else history.page(before, after, limit)

    def sent_malformed(self) -> list[bytes]:
        with self._lock:
            return list(self._malformed)

    def subscribe_messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._subscribes)

    def done(self) -> bool:
        """Everything was generated (`count` per subscribed product, or the whole
        capture) and every open connection has sent what it was given."""
        if any(listener.backlog() for listener in list(self._listeners)):
            return False
        if self.replay is not None:
            return self._replay_pos >= len(self.replay)
        if self.config.count is None:
            return False
        with self._lock:
            started = list(self._started)
        return bool(started) and all(self._tapes[p].exhausted() for p in started)

    # --- the clock --------------------------------------------------------------

    def _record(self, items: list[Item]) -> None:
        record = self.config.record
        with self._lock:
            for product, data, _ in items:
                if product is not None:
                    self._ticker_counts[product] += 1
                    if record:
                        self._tickers[product].append(data)

    def _broadcast(self, items: list[Item], recorded: list[Item]) -> None:
        self._record(recorded)
        for listener in list(self._listeners):
            wanted = [item for item in items if listener.wants(item[0], item[2] is not None)]
            if wanted:
                listener.push(wanted)

    def _has_room(self) -> bool:
        listeners = self._listeners
        return bool(listeners) and all(listener.backlog() < BATCH for listener in listeners)

    async def _clock(self) -> None:
        """Generate and broadcast: paced by `rate`, or (rate 0) as fast as the
        slowest subscribed connection sends."""
        loop = asyncio.get_running_loop()
        rate = self.config.rate
        while True:
            self._changed.clear()
            if rate == 0:
                taken = self._take(BATCH, None) if self._has_room() else ([], [])
                if taken[0]:
                    self._emit(taken)
                    await asyncio.sleep(0)  # let the sessions write
                    continue
                await self._wait(None)
                continue
            self._emit(self._take(None, loop.time()))
            due = self._next_due()
            await self._wait(None if due is None else due - loop.time())

    async def _wait(self, delay: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(None if delay is None else max(0.0, delay)):
                await self._changed.wait()

    def _emit(self, taken: tuple[list[Item], list[Item]]) -> None:
        items, recorded = taken
        if items:
            self._broadcast(items, recorded)

    def _take(self, limit: int | None, now: float | None) -> tuple[list[Item], list[Item]]:
        """What is due (paced: at loop time `now`; unpaced: about `limit` frames),
        and which of it is recorded as sent tickers."""
        if self.replay is not None:
            lines = list(self._take_replay(limit, now))
            # Ticker lines of a capture are recorded; other lines are only sent.
            items: list[Item] = [(line.product_id, line.data, None) for line in lines]
            return items, [item for item, line in zip(items, lines, strict=True) if line.is_ticker]
        per_product: list[list[Item]] = []
        tickers: list[Item] = []
        made: dict[str, list[Trade]] = {}
        with self._lock:
            started = dict(self._started)
        rate = self.config.rate
        listeners = self._listeners
        for product in self.config.products:
            if product not in started:
                continue
            tape = self._tapes[product]
            if now is None:
                wanted = 1 if limit is None else max(1, limit // max(1, len(started)))
            else:
                wanted = int((now - started[product]) * rate) + 1 - tape.made
                if wanted > rate:  # more than a second behind: skip, don't burst
                    with self._lock:
                        self._started[product] = now - tape.made / rate
                    wanted = 1
            frames: list[Item] = []
            stamp = time.time_ns()
            # Match frames are only built when some connection takes them; the
            # trades are kept either way (REST serves them).
            matches = any(listener.wants(product, True) for listener in listeners)
            trades = made[product] = []
            for _ in range(max(0, wanted)):
                batch, ticks = tape.next(stamp)
                trades += batch
                if matches:
                    frames.extend((product, trade.frame(), trade) for trade in batch)
                frames.extend((product, data, None) for data in ticks)
            per_product.append(frames)
            tickers.extend(item for item in frames if item[2] is None)
        with self._lock:
            for product, trades in made.items():
                self._histories[product].add(trades)
        return list(_interleave(per_product)), tickers

    def _take_replay(self, limit: int | None, now: float | None) -> Iterator[ReplayLine]:
        """Capture lines in order; lines of products nobody subscribed to are skipped."""
        lines = self.replay
        assert lines is not None
        if self._replay_started is None:
            return  # the capture starts with the first subscription
        with self._lock:
            subscribed = set(self._started)
        if now is None:
            wanted = limit or BATCH
        else:
            wanted = int((now - self._replay_started) * self.config.rate) + 1 - self._replay_handed
        while wanted > 0 and self._replay_pos < len(lines):
            line = lines[self._replay_pos]
            self._replay_pos += 1
            if line.product_id is None or line.product_id in subscribed:
                self._replay_handed += 1
                wanted -= 1
                yield line

    def _next_due(self) -> float | None:
        """Loop time of the next paced frame; None until a subscription changes that."""
        rate = self.config.rate
        with self._lock:
            started = dict(self._started)
        if self.replay is not None:
            if self._replay_started is None or self._replay_pos >= len(self.replay):
                return None
            return self._replay_started + self._replay_handed / rate
        dues = [
            start + self._tapes[p].made / rate
            for p, start in started.items()
            if not self._tapes[p].exhausted()
        ]
        return min(dues, default=None)

    async def _drop_one_every(self, seconds: float) -> None:
        """Drop the oldest open connection every `seconds` from the first
        subscription on, the others untouched."""
        await self._first_join.wait()
        while True:
            await asyncio.sleep(seconds)
            if self._listeners:
                oldest = self._listeners.pop(0)  # it gets nothing more from now on
                oldest.request_drop()


def _interleave(lists: list[list[Item]]) -> Iterator[Item]:
    """Round robin over products, so they take turns on the wire."""
    longest = max((len(frames) for frames in lists), default=0)
    for i in range(longest):
        for frames in lists:
            if i < len(frames):
                yield frames[i]
