"""One client connection: subscribe handshake, data stream, heartbeats, faults."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from .frames import error_frame, subscriptions_frame
from .subscriptions import Channels, SubscribeError, merge, parse_subscribe, remove

if TYPE_CHECKING:
    from .server import Simulator

# Kinds of data frames, deciding what is recorded and counted once sent.
SNAPSHOT = 1
TRADE = 2
REPLAY_TICKER = 3
REPLAY_OTHER = 4

Item = tuple[str | None, bytes, int]  # (product id, frame bytes, kind)

# Most frames written at once: big enough to amortise the per-write cost,
# small enough that heartbeats and other connections are not held up.
_BATCH = 32

# Paced sleeps shorter than this use plain asyncio.sleep; longer ones must wake
# up early for the drop deadline or a subscription change.
_SHORT_SLEEP = 0.05


def _close_reason(text: str) -> str:
    # A close reason must fit in 123 bytes of UTF-8 (RFC 6455 section 5.5).
    return text.encode()[:123].decode(errors="ignore")


def _parse(raw: str | bytes) -> dict[str, Any] | None:
    try:
        message: object = json.loads(raw)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


class Session:
    """One client connection: subscribe handshake, stream, heartbeats, faults."""

    def __init__(self, sim: Simulator, ws: ServerConnection) -> None:
        self._sim = sim
        self._cfg = sim.config
        self._ws = ws
        self._loop = asyncio.get_running_loop()
        self._channels: Channels = {}
        self._tickers: list[str] = []  # ticker products, in round-robin order
        self._heartbeats: list[str] = []
        self._subscribed: set[str] = set()  # any channel (replay filter)
        self._snapshots: deque[str] = deque()
        self._rr = 0
        self._sent = 0  # data frames sent on this connection (drives the faults)
        self._interval = 0.0  # seconds between paced frames; 0 = unpaced
        self._stalled = False
        self._stall_done = False
        self._wake = asyncio.Event()  # subscription change: idle stream looks again
        self._drop_deadline: float | None = None
        # Batched writes need the connection's drain() (websockets >= 13's asyncio
        # API); fall back to plain send() per frame if a version lacks it.
        self._batch_writes = callable(getattr(ws, "drain", None))

    async def run(self) -> None:
        if not await self._handshake():
            return
        if self._cfg.drop_after_seconds is not None:
            self._drop_deadline = self._loop.time() + self._cfg.drop_after_seconds
        reader = asyncio.create_task(self._read())
        stream = asyncio.create_task(self._stream())
        tasks = [reader, stream]
        if self._sim._replay is None:  # a capture carries its own heartbeats
            tasks.append(asyncio.create_task(self._beat()))
        try:
            # The reader ends when the client closes; the stream when it closed us.
            await asyncio.wait((reader, stream), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            # A reset socket (OSError) is the client going away, like ConnectionClosed.
            if isinstance(result, Exception) and not isinstance(result, ConnectionClosed | OSError):
                raise result

    # --- subscribing --------------------------------------------------------

    async def _handshake(self) -> bool:
        """Wait for the first valid subscribe; False if the connection was refused."""
        deadline = self._loop.time() + self._cfg.subscribe_timeout
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    raw = await self._ws.recv()
            except TimeoutError:
                reason = f"Failed to subscribe within {self._cfg.subscribe_timeout:g} seconds"
                await self._ws.close(1008, _close_reason(reason))
                return False
            message = _parse(raw)
            if message is None:
                await self._refuse("Malformed JSON")
                return False
            if message.get("type") == "subscribe":
                return await self._subscribe(message)
            # Anything else before a subscription is ignored, like unknown types.

    async def _refuse(self, reason: str) -> None:
        await self._ws.send(error_frame("Failed to subscribe", reason))
        await self._ws.close(1008, _close_reason(reason))

    async def _subscribe(self, message: dict[str, Any]) -> bool:
        self._sim._record_subscribe(message)
        try:
            requested = parse_subscribe(message, self._sim.known_products)
        except SubscribeError as exc:
            await self._refuse(str(exc))
            return False
        old = set(self._tickers)
        self._apply(merge(self._channels, requested))
        # Queue snapshots before awaiting, so no trade ticker of a new product
        # can slip in ahead of its snapshot.
        if self._cfg.snapshot and self._sim._replay is None:
            self._snapshots.extend(p for p in self._tickers if p not in old)
        await self._ws.send(subscriptions_frame(self._channels))
        self._wake.set()
        return True

    def _apply(self, channels: Channels) -> None:
        self._channels = channels
        self._tickers = list(channels.get("ticker", ()))
        self._heartbeats = list(channels.get("heartbeat", ()))
        self._subscribed = {p for ids in channels.values() for p in ids}
        self._sim._note_subscribed(self._tickers)
        rate = self._cfg.rate
        if rate == 0:
            self._interval = 0.0
        elif self._sim._replay is not None:
            self._interval = 1.0 / rate
        else:
            # `rate` is per product; products take turns on one connection.
            self._interval = 1.0 / (rate * max(1, len(self._tickers)))

    async def _read(self) -> None:
        """Handle client messages after the first subscribe; unknown ones are ignored."""
        async for raw in self._ws:
            message = _parse(raw)
            if message is None:
                continue
            kind = message.get("type")
            if kind == "subscribe":
                if not await self._subscribe(message):
                    return
            elif kind == "unsubscribe":
                self._apply(remove(self._channels, message))
                if not self._stalled:
                    await self._ws.send(subscriptions_frame(self._channels))

    # --- sending ---------------------------------------------------------

    def _take_generated(self) -> Item | None:
        """Next frame of the round-robin; None when every product ran out of `count`."""
        sim = self._sim
        while self._snapshots:
            product = self._snapshots.popleft()
            if product in self._tickers:
                state = sim._states[product]
                return product, state.snapshot(not self._cfg.snapshot_without_sequence), SNAPSHOT
        products = self._tickers
        n = len(products)
        count = self._cfg.count
        for _ in range(n):
            product = products[self._rr % n]
            self._rr += 1
            state = sim._states[product]
            if count is None or state.sent + state.in_flight < count:
                state.in_flight += 1
                return product, state.next_ticker(time.time_ns()), TRADE
        return None

    def _take_replay(self) -> Item | None:
        """Next capture line for this connection's products; None at the end."""
        sim = self._sim
        lines = sim._replay
        assert lines is not None
        while sim._replay_pos < len(lines):
            line = lines[sim._replay_pos]
            sim._replay_pos += 1
            if line.product_id is None or line.product_id in self._subscribed:
                sim._replay_in_flight += 1
                kind = REPLAY_TICKER if line.is_ticker else REPLAY_OTHER
                return line.product_id, line.data, kind
        return None

    def _next_fault(self) -> int:
        """The data-frame count at which the next fault fires."""
        cfg = self._cfg
        n = self._sent
        points = [cfg.error_after_messages, cfg.drop_after_messages]
        if not self._stall_done:
            points.append(cfg.stall_after_messages)
        if cfg.malformed_every is not None:
            # Frame number n+1 is malformed when it is a multiple of K.
            points.append(n + (-(n + 1)) % cfg.malformed_every)
        return min((p for p in points if p is not None and p >= n), default=1 << 62)

    def _deadline_passed(self) -> bool:
        return self._drop_deadline is not None and self._loop.time() >= self._drop_deadline

    async def _pause(self, delay: float | None) -> None:
        """Sleep up to `delay` (None = indefinitely); wake early for the drop
        deadline or a subscription change."""
        if self._drop_deadline is not None:
            left = max(0.0, self._drop_deadline - self._loop.time())
            delay = left if delay is None else min(delay, left)
        self._wake.clear()
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _stream(self) -> None:
        """Send data frames until a fault ends the connection (or the client does)."""
        loop = self._loop
        take = self._take_generated if self._sim._replay is None else self._take_replay
        fault_at = self._next_fault()
        next_time = loop.time()  # when the next paced frame is due
        while True:
            if self._sent >= fault_at:
                if await self._fault():
                    return
                fault_at = self._next_fault()
                continue
            if self._drop_deadline is not None and self._deadline_passed():
                await self._drop(f"after {self._cfg.drop_after_seconds:g} seconds")
                return
            interval = self._interval
            # Unpaced: a batch per write. Paced: whatever is due (several frames
            # when the rate outruns the loop's ~1 ms sleep resolution). A batch
            # never crosses a fault point, so faults fire at exact counts.
            due = _BATCH
            if interval > 0.0:
                due = 1 + int(max(0.0, loop.time() - next_time) / interval)
            limit = min(_BATCH, due, fault_at - self._sent)
            items: list[Item] = []
            while len(items) < limit and (item := take()) is not None:
                items.append(item)
            if not items:
                await self._pause(None)  # nothing to send until subscriptions change
                next_time = loop.time()
                continue
            await self._send_items(items)
            if interval == 0.0:
                # A fast client never makes send() wait: yield so the heartbeat
                # and reader tasks (and other connections) get the loop.
                await asyncio.sleep(0)
                continue
            if items[-1][2] == SNAPSHOT:
                continue  # snapshots go out at once, as on the real feed
            # Absolute schedule: oversleeping is made up by the next frames.
            next_time += interval * len(items)
            delay = next_time - loop.time()
            if delay > 0:
                if delay < _SHORT_SLEEP and self._drop_deadline is None:
                    await asyncio.sleep(delay)
                else:
                    await self._pause(delay)
            elif delay < -1.0:
                next_time = loop.time()  # a slow client: don't burst to catch up

    async def _send_items(self, items: list[Item]) -> None:
        """Send frames, then record them as sent (or give back what was not)."""
        ws = self._ws
        done = 0
        try:
            if len(items) > 1 and self._batch_writes and ws.protocol.state is State.OPEN:
                # One socket write for the whole batch instead of a syscall and a
                # send() context per frame: about half the CPU per frame. Frames
                # are framed by websockets' Sans-I/O protocol as send() does; an
                # OPEN connection has no end-of-stream marker among the chunks.
                protocol = ws.protocol
                for item in items:
                    protocol.send_text(item[1])
                ws.transport.write(b"".join(protocol.data_to_send()))
                await ws.drain()  # backpressure: waits while the client is slow
                done = len(items)
            else:
                for item in items:
                    await ws.send(item[1], text=True)
                    done += 1
        finally:
            self._sim._on_sent(items[:done])
            for item in items[done:]:
                self._sim._on_unsent(item)
            self._sent += done

    async def _fault(self) -> bool:
        """Apply the fault due at this frame count; True if the connection is over."""
        cfg = self._cfg
        n = self._sent
        if cfg.error_after_messages == n:
            reason = f"simulated error after {n} messages"
            await self._ws.send(error_frame("Internal server error", reason))
            await self._ws.close(1011, "simulated error")
            return True
        if cfg.drop_after_messages == n:
            await self._drop(f"after {n} messages")
            return True
        if cfg.stall_after_messages == n and not self._stall_done:
            self._stall_done = True
            self._stalled = True  # heartbeats stop too; the socket stays open
            end = self._loop.time() + cfg.stall_seconds
            while (left := end - self._loop.time()) > 0 and not self._deadline_passed():
                await self._pause(left)
            self._stalled = False
            if self._deadline_passed():
                await self._drop(f"after {cfg.drop_after_seconds:g} seconds")
                return True
        if cfg.malformed_every is not None and (n + 1) % cfg.malformed_every == 0:
            tickers = self._tickers
            product = tickers[self._rr % len(tickers)] if tickers else cfg.products[0]
            data = self._sim._next_malformed(product)
            await self._ws.send(data, text=True)
            self._sent += 1
            self._sim._record_malformed(data)
        return False

    async def _drop(self, why: str) -> None:
        """Close with the configured code, or abort the TCP connection.

        A clean close goes after every frame sent so far, so all of them
        arrive. "abort" discards what is still in the socket buffers: the
        last frames counted as sent may never reach the client.
        """
        code = self._cfg.drop_code
        if code == "abort":
            self._ws.transport.abort()  # no close frame: the client sees 1006
            await self._ws.wait_closed()
        else:
            await self._ws.close(code, _close_reason(f"simulated drop {why}"))

    async def _beat(self) -> None:
        """One heartbeat per second per heartbeat product, except while stalled."""
        interval = self._cfg.heartbeat_interval
        loop = self._loop
        next_time = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_time - loop.time()))
            next_time += interval
            if loop.time() > next_time:
                next_time = loop.time() + interval  # fell behind: skip, don't burst
            if self._stalled:
                continue
            now = time.time_ns()
            for product in list(self._heartbeats):
                await self._ws.send(self._sim._states[product].heartbeat(now), text=True)
