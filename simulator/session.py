"""One client connection: subscribe handshake, data stream, heartbeats, faults."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from .frames import error_frame, subscriptions_frame
from .market import BATCH, Item, Market
from .subscriptions import Channels, SubscribeError, merge, parse_subscribe, remove

# Frames queued for one connection before it is dropped as too slow (~40 MB).
_MAX_BACKLOG = 100_000


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
    """One client connection: subscribe handshake, stream, heartbeats, faults.

    The market pushes the frames this connection wants into its queue; the
    stream task writes them out, applying this connection's faults.
    """

    def __init__(self, market: Market, ws: ServerConnection) -> None:
        self._market = market
        self._cfg = market.config
        self._ws = ws
        self._loop = asyncio.get_running_loop()
        self._channels: Channels = {}
        self._tickers: list[str] = []  # ticker products, in round-robin order
        self._matches: list[str] = []  # matches products
        self._heartbeats: list[str] = []
        self._subscribed: set[str] = set()  # any channel (replay filter)
        self._queue: deque[Item] = deque()  # frames given to this connection, not yet sent
        self._sending = 0  # frames taken off the queue and being written
        self._rr = 0
        self._sent = 0  # data frames sent on this connection (drives the faults)
        self._drop_requested = False
        self._stalled = False
        self._stall_done = False
        self._wake = asyncio.Event()  # subscription change: idle stream looks again
        self._drop_deadline: float | None = None
        # Batched writes need the connection's drain() (websockets >= 13's asyncio
        # API); fall back to plain send() per frame if a version lacks it.
        self._batch_writes = callable(getattr(ws, "drain", None))

    async def run(self) -> None:
        try:
            await self._serve()
        finally:
            self._market.leave(self)  # however it ended, even mid-handshake

    async def _serve(self) -> None:
        if not await self._handshake():
            return
        if self._cfg.drop_after_seconds is not None:
            self._drop_deadline = self._loop.time() + self._cfg.drop_after_seconds
        reader = asyncio.create_task(self._read())
        stream = asyncio.create_task(self._stream())
        tasks = [reader, stream]
        if self._market.replay is None:  # a capture carries its own heartbeats
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
        market = self._market
        market.record_subscribe(message)
        try:
            requested = parse_subscribe(message, market.known_products)
        except SubscribeError as exc:
            await self._refuse(str(exc))
            return False
        old_tickers, old_matches = set(self._tickers), set(self._matches)
        self._apply(merge(self._channels, requested))
        # Snapshots and last_match frames are queued before joining the market, so no
        # ticker or match of a new product can slip in ahead of them.
        if market.replay is None:
            if self._cfg.snapshot:
                with_sequence = not self._cfg.snapshot_without_sequence
                self._queue.extend(
                    (p, market.snapshot(p, with_sequence), None)
                    for p in self._tickers
                    if p not in old_tickers
                )
            self._queue.extend(market.last_match(p) for p in self._matches if p not in old_matches)
            trading = list(dict.fromkeys(self._tickers + self._matches))
        else:
            trading = sorted(self._subscribed)
        market.join(self, trading)
        await self._ws.send(subscriptions_frame(self._channels))
        self._wake.set()
        return True

    def _apply(self, channels: Channels) -> None:
        self._channels = channels
        self._tickers = list(channels.get("ticker", ()))
        self._matches = list(channels.get("matches", ()))
        self._heartbeats = list(channels.get("heartbeat", ()))
        self._subscribed = {p for ids in channels.values() for p in ids}

    # --- what the market calls (market.Listener) -------------------------------

    def wants(self, product: str | None, match: bool) -> bool:
        if self._market.replay is not None:
            return product is None or product in self._subscribed
        return product in (self._matches if match else self._tickers)

    def push(self, items: list[Item]) -> None:
        self._queue.extend(items)
        self._wake.set()
        if len(self._queue) > _MAX_BACKLOG:
            self.request_drop()  # a client this far behind is cut off, as Coinbase does

    def backlog(self) -> int:
        return len(self._queue) + self._sending

    def request_drop(self) -> None:
        self._drop_requested = True
        self._wake.set()

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

    def _interrupted(self) -> bool:
        return self._drop_requested or self._deadline_passed()

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
        """Send queued frames until a fault ends the connection (or the client does)."""
        queue = self._queue
        fault_at = self._next_fault()
        while True:
            if self._drop_requested:
                await self._drop("(one connection of several)")
                return
            if self._sent >= fault_at:
                if await self._fault():
                    return
                fault_at = self._next_fault()
                continue
            if self._drop_deadline is not None and self._deadline_passed():
                await self._drop(f"after {self._cfg.drop_after_seconds:g} seconds")
                return
            if not queue:
                await self._pause(None)
                continue
            # A batch never crosses a fault point, so faults fire at exact counts.
            limit = min(BATCH, len(queue), fault_at - self._sent)
            items = [queue.popleft() for _ in range(limit)]
            await self._send(items)
            if not queue:
                self._market.room()
            # A fast client never makes send() wait: yield so the heartbeat and
            # reader tasks (and other connections) get the loop.
            await asyncio.sleep(0)

    async def _send(self, items: list[Item]) -> None:
        """Write frames; those whose write completed are reported as delivered."""
        ws = self._ws
        self._sending = len(items)
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
            self._sending = 0
            self._sent += done
            self._market.delivered(items[:done])

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
            while (left := end - self._loop.time()) > 0 and not self._interrupted():
                await self._pause(left)
            self._stalled = False
            if self._deadline_passed():
                await self._drop(f"after {cfg.drop_after_seconds:g} seconds")
                return True
        if cfg.malformed_every is not None and (n + 1) % cfg.malformed_every == 0:
            trading = self._tickers or self._matches
            product = trading[self._rr % len(trading)] if trading else cfg.products[0]
            data = self._market.malformed(product)
            await self._ws.send(data, text=True)
            self._sent += 1
            self._market.record_malformed(data)
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
            for product in list(self._heartbeats):
                await self._ws.send(self._market.heartbeat(product), text=True)
