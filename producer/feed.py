"""The WebSocket side: connect, subscribe, read, watch, reconnect.

One connection. Any close (1000, 1001, 1006, 1011, ...), an `error` frame, or no frame for
`feed_stale_after_s` (heartbeats arrive every second) ends the session; the next connect
waits an exponential, jittered, capped backoff, and attempts are spaced so connects stay
well under Coinbase's per-IP limit. Every (re)connect subscribes afresh, freshly signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from producer import metrics
from producer.auth import signed_fields
from shared.logs import get_logger
from shared.settings import ProducerSettings

log = get_logger(__name__)

MIN_CONNECT_SPACING_S = 0.5  # at most 2 connects a second, far below 8/s per IP

# Called with (frame, received_ns); returns False to end the session (an `error` frame).
FrameHandler = Callable[[bytes, int], bool]


@dataclass
class FeedState:
    """What health and tests read about the feed."""

    connected: bool = False
    connects: int = 0
    last_frame_at: float = 0.0  # monotonic
    last_disconnect_at: float | None = None


class Backoff:
    """Exponential backoff with full jitter, capped."""

    def __init__(self, minimum_s: float, maximum_s: float) -> None:
        self.minimum_s, self.maximum_s = minimum_s, maximum_s
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum_s, self.minimum_s * 2**self.attempt)
        self.attempt += 1
        return random.uniform(self.minimum_s, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def subscribe_message(settings: ProducerSettings) -> bytes:
    message: dict[str, object] = {
        "type": "subscribe",
        "product_ids": list(settings.products),
        "channels": ["ticker", "heartbeat"],
    }
    key, secret, passphrase = (
        settings.coinbase_api_key,
        settings.coinbase_api_secret,
        settings.coinbase_api_passphrase,
    )
    if key and secret and passphrase:
        message |= signed_fields(
            key.get_secret_value(), secret.get_secret_value(), passphrase.get_secret_value()
        )
    return orjson.dumps(message)


class Feed:
    """Runs sessions until `stop` is set; hands every frame to `handle` as it arrives."""

    def __init__(self, settings: ProducerSettings, handle: FrameHandler, state: FeedState) -> None:
        self.settings = settings
        self.handle = handle
        self.state = state
        self.stop = asyncio.Event()
        self._backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        self._last_connect_at = 0.0

    async def run(self) -> None:
        while not self.stop.is_set():
            await self._space_connects()
            cause = await self._session()
            self.state.connected = False
            self.state.last_disconnect_at = time.monotonic()
            if self.stop.is_set():
                break
            metrics.RECONNECTS.labels(cause=cause).inc()
            delay = self._backoff.next_delay()
            log.warning("feed disconnected; reconnecting", cause=cause, in_s=round(delay, 3))
            await self._sleep(delay)

    async def _session(self) -> str:
        """One connection from connect to close; returns why it ended."""
        try:
            async with connect(
                self.settings.coinbase_ws_url,
                max_size=2**20,
                open_timeout=10,
                close_timeout=2,
                ping_interval=20,
                ping_timeout=20,
            ) as websocket:
                await websocket.send(subscribe_message(self.settings))
                self.state.connected = True
                self.state.connects += 1
                self.state.last_frame_at = time.monotonic()
                log.info(
                    "feed connected; subscribed",
                    url=self.settings.coinbase_ws_url,
                    products=self.settings.products,
                )
                return await self._read(websocket)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            reason = exc.rcvd.reason if exc.rcvd else "no close frame"
            log.warning("feed closed", code=code, reason=reason)
            return f"close_{code}"
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            log.warning("feed connect failed", error=repr(exc))
            return "connect_failed"

    async def _read(self, websocket: ClientConnection) -> str:
        watchdog = asyncio.create_task(self._watch(websocket))
        stopper = asyncio.create_task(self._close_on_stop(websocket))
        answered = False
        try:
            while True:
                frame = await websocket.recv(decode=False)
                self.state.last_frame_at = time.monotonic()
                if not self.handle(frame, time.time_ns()):
                    await websocket.close(1000, "error frame received")
                    return "error_frame"
                if not answered:
                    # The feed took the subscription: the next reconnect starts from the
                    # shortest wait again (connects stay spaced by MIN_CONNECT_SPACING_S).
                    answered = True
                    self._backoff.reset()
        except ConnectionClosed:
            if self.stop.is_set():
                return "stopped"
            if watchdog.done():
                return "stale"
            raise
        finally:
            watchdog.cancel()
            stopper.cancel()

    async def _watch(self, websocket: ClientConnection) -> None:
        """Close a connection that went quiet: heartbeats come every second."""
        stale_after = self.settings.feed_stale_after_s
        while True:
            await asyncio.sleep(min(1.0, stale_after / 4))
            silent_for = time.monotonic() - self.state.last_frame_at
            if silent_for > stale_after:
                log.warning("feed stale; dropping connection", silent_s=round(silent_for, 1))
                websocket.transport.abort()  # don't wait for a closing handshake that won't come
                return

    async def _close_on_stop(self, websocket: ClientConnection) -> None:
        await self.stop.wait()
        await websocket.close(1000, "shutting down")

    async def _space_connects(self) -> None:
        wait = self._last_connect_at + MIN_CONNECT_SPACING_S - time.monotonic()
        if wait > 0:
            await self._sleep(wait)
        self._last_connect_at = time.monotonic()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
