"""The WebSocket side: connect, subscribe, read, watch, reconnect; N connections hot-hot.

`FEED_CONNECTIONS` independent sessions read the same feed at once, each with its own
subscribe, watchdog and backoff; every frame of every connection goes to one handler, which
publishes the first arrival of each tick. When one connection drops or stalls the others
keep the stream going, so a reconnect leaves no gap (Coinbase has no replay; it recommends
a second connection as failover). Any close (1000, 1001, 1006, 1011, ...), an `error`
frame, or no frame for `feed_stale_after_s` (heartbeats arrive every second) ends a
session; the next connect waits an exponential, jittered, capped backoff. Connects of all
connections share one pacer, so they start apart and stay well under Coinbase's per-IP
limit. Every (re)connect subscribes afresh, freshly signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Event

from producer import metrics
from producer.auth import signed_fields
from producer.settings import ProducerSettings
from shared.logs import get_logger

log = get_logger(__name__)

# All connections together: at most 2 connects a second, far below Coinbase's 8/s per IP.
MIN_CONNECT_SPACING_S = 0.5

# Called with (frame, received_ns, connection label); returns False to end that session.
OnFrame = Callable[[bytes, int, str], bool]


@dataclass
class ConnectionState:
    """What health and tests read about one connection."""

    label: str  # "0", "1", ...: the metrics label
    connected: bool = False
    connects: int = 0
    last_frame_at: float = 0.0  # monotonic


@dataclass
class FeedState:
    """All connections, and how often every one of them was down at once."""

    connections: list[ConnectionState] = field(default_factory=list)
    outages: int = 0  # times the last live connection went down: ticks may be missing

    @property
    def connected(self) -> int:
        return sum(state.connected for state in self.connections)

    def went_down(self, state: ConnectionState) -> None:
        if state.connected:
            state.connected = False
            metrics.CONNECTION_UP.labels(connection=state.label).set(0)
            if not self.connected:
                self.outages += 1


class ConnectPacer:
    """Spaces the connects of every connection by MIN_CONNECT_SPACING_S (one event loop)."""

    def __init__(self) -> None:
        self._next_at = 0.0

    def reserve(self) -> float:
        """Take the next free slot; returns how long to wait for it."""
        now = time.monotonic()
        slot = max(now, self._next_at)
        self._next_at = slot + MIN_CONNECT_SPACING_S
        return slot - now


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


def channels(settings: ProducerSettings) -> list[str]:
    """`matches` too when the trade tape is on (KAFKA_TRADES_TOPIC set)."""
    return ["ticker", "heartbeat"] + (["matches"] if settings.kafka_trades_topic else [])


def subscribe_message(settings: ProducerSettings) -> bytes:
    message: dict[str, object] = {
        "type": "subscribe",
        "product_ids": list(settings.products),
        "channels": channels(settings),
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


class FrameConnection(ClientConnection):
    """A client connection that hands each message to `on_message` as soon as it is parsed.

    websockets' own path queues every message for `recv()` and wakes a task to take it: a
    future, a queue and a task step per frame, about a fifth of the producer's CPU at 900
    ticks/s. The feed never waits between frames, so each goes straight on from
    `data_received`. Handshake, pings, close and `max_size` (FEED_MAX_FRAME_BYTES) stay
    websockets' own.
    """

    def __init__(
        self, on_message: Callable[[bytes], None], protocol: ClientProtocol, **kwargs: Any
    ) -> None:
        super().__init__(protocol, **kwargs)
        self.on_message = on_message
        self._fragments: list[bytes] = []  # a fragmented message so far (Coinbase sends none)

    def process_event(self, event: Event) -> None:
        if type(event) is not Frame or event.opcode not in _MESSAGE_OPCODES:
            super().process_event(event)  # the handshake response, pings, pongs, close
            return
        data = event.data if type(event.data) is bytes else bytes(event.data)
        if event.fin and not self._fragments:
            self.on_message(data)
            return
        self._fragments.append(data)
        if event.fin:
            message, self._fragments = b"".join(self._fragments), []
            self.on_message(message)


_MESSAGE_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class Feed:
    """Runs every connection until `stop` is set; hands every frame to `on_frame`."""

    def __init__(self, settings: ProducerSettings, on_frame: OnFrame, state: FeedState) -> None:
        self.stop = asyncio.Event()
        self.state = state
        pacer = ConnectPacer()
        self.connections = [
            Connection(settings, on_frame, self.state, pacer, self.stop, str(index))
            for index in range(settings.feed_connections)
        ]

    async def run(self) -> None:
        await asyncio.gather(*(connection.run() for connection in self.connections))


class Connection:
    """One WebSocket session after another, until `stop` is set."""

    def __init__(
        self,
        settings: ProducerSettings,
        on_frame: OnFrame,
        feed: FeedState,
        pacer: ConnectPacer,
        stop: asyncio.Event,
        label: str,
    ) -> None:
        self.settings = settings
        self.on_frame = on_frame
        self.feed = feed
        self.state = ConnectionState(label)
        feed.connections.append(self.state)
        self.pacer = pacer
        self.stop = stop
        self._backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        # Per session: an error frame (or a failure) ends it; the first frame resets backoff.
        self._ended = asyncio.Event()
        self._answered = False
        self._failure: Exception | None = None

    async def run(self) -> None:
        while not self.stop.is_set():
            await self._sleep(self.pacer.reserve())
            if self.stop.is_set():
                break
            cause = await self._session()
            self.feed.went_down(self.state)
            if self.stop.is_set():
                break
            metrics.RECONNECTS.labels(connection=self.state.label, cause=cause).inc()
            delay = self._backoff.next_delay()
            log.warning(
                "feed disconnected; reconnecting",
                connection=self.state.label,
                cause=cause,
                in_s=round(delay, 3),
                live_connections=self.feed.connected,
            )
            await self._sleep(delay)

    async def _session(self) -> str:
        """One connection from connect to close; returns why it ended."""
        self._ended, self._answered, self._failure = asyncio.Event(), False, None
        try:
            frame_connection = functools.partial(FrameConnection, self._on_message)
            async with connect(
                self.settings.coinbase_ws_url,
                create_connection=cast(type[FrameConnection], frame_connection),
                max_size=self.settings.feed_max_frame_bytes,
                open_timeout=10,
                close_timeout=2,
                ping_interval=20,
                ping_timeout=20,
            ) as websocket:
                await websocket.send(subscribe_message(self.settings))
                self.state.connected = True
                self.state.connects += 1
                self.state.last_frame_at = time.monotonic()
                metrics.CONNECTION_UP.labels(connection=self.state.label).set(1)
                log.info(
                    "feed connected; subscribed",
                    connection=self.state.label,
                    url=self.settings.coinbase_ws_url,
                    products=self.settings.products,
                    channels=channels(self.settings),
                )
                return await self._read(websocket)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                # websockets refuses a message over max_size from its header, unread.
                metrics.LARGE_FRAMES.labels(event="over_limit").inc()
                log.error(
                    "a frame over FEED_MAX_FRAME_BYTES closed the connection",
                    connection=self.state.label,
                    limit=self.settings.feed_max_frame_bytes,
                    reason=exc.sent.reason,
                )
                return "frame_over_limit"
            code = exc.rcvd.code if exc.rcvd else 1006
            reason = exc.rcvd.reason if exc.rcvd else "no close frame"
            log.warning("feed closed", connection=self.state.label, code=code, reason=reason)
            return f"close_{code}"
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            log.warning("feed connect failed", connection=self.state.label, error=repr(exc))
            return "connect_failed"

    def _on_message(self, frame: bytes) -> None:
        """Every message of the session, straight from the socket (never blocks)."""
        if self._ended.is_set():
            return  # closing after an error frame
        state = self.state
        state.last_frame_at = time.monotonic()
        try:
            going_on = self.on_frame(frame, time.time_ns(), state.label)
        except Exception as exc:  # a bug: end the service as a failing read would have
            self._failure = exc
            going_on = False
        if not going_on:
            self._ended.set()
        elif not self._answered:
            # The feed took the subscription: the next reconnect starts from the shortest
            # wait again (connects stay spaced by the pacer).
            self._answered = True
            self._backoff.reset()

    async def _read(self, websocket: ClientConnection) -> str:
        """Wait while `_on_message` gets the frames: until a close, an error frame or stop."""
        watchdog = asyncio.create_task(self._watch(websocket))
        closed = asyncio.create_task(websocket.wait_closed())
        ended = asyncio.create_task(self._ended.wait())
        stopped = asyncio.create_task(self.stop.wait())
        waits = (watchdog, closed, ended, stopped)
        try:
            await asyncio.wait((closed, ended, stopped), return_when=asyncio.FIRST_COMPLETED)
            if self._failure is not None:
                raise self._failure
            if self.stop.is_set():
                await websocket.close(1000, "shutting down")
                return "stopped"
            if self._ended.is_set():
                await websocket.close(1000, "error frame received")
                return "error_frame"
            if watchdog.done():
                return "stale"
            raise websocket.protocol.close_exc
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _watch(self, websocket: ClientConnection) -> None:
        """Close a connection that went quiet: heartbeats come every second."""
        stale_after = self.settings.feed_stale_after_s
        while True:
            await asyncio.sleep(min(1.0, stale_after / 4))
            silent_for = time.monotonic() - self.state.last_frame_at
            if silent_for > stale_after:
                log.warning(
                    "feed stale; dropping connection",
                    connection=self.state.label,
                    silent_s=round(silent_for, 1),
                )
                websocket.transport.abort()  # don't wait for a closing handshake that won't come
                return

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
