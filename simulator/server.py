"""The Simulator: listening socket, market state shared by connections, what tests inspect."""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .config import SimulatorConfig
from .faults import malformed_frame
from .frames import ProductState
from .replay import ReplayLine, load_replay
from .session import REPLAY_OTHER, REPLAY_TICKER, TRADE, Item, Session

log = logging.getLogger("simulator")


class Simulator:
    """An asyncio WebSocket server that behaves like Coinbase's Exchange feed.

    Market state (sequence, trade id, prices) lives here, not in a
    connection: a reconnecting client continues the same walk and never sees
    a repeated sequence. Several connections subscribed to the same product
    share its walk, each getting a part of it (unlike the real feed, which
    broadcasts). The same holds for a replay: one cursor over the file.

    Accessors (sent_tickers() etc.) may be called from any thread and
    return copies.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        cfg = self.config
        self._states = {p: ProductState(p, cfg.seed) for p in cfg.products}
        self._replay: list[ReplayLine] | None = None
        known = set(cfg.products)
        if cfg.replay_file is not None:
            self._replay = load_replay(cfg.replay_file)
            # Products of the capture are subscribable even if not configured.
            known.update(line.product_id for line in self._replay if line.product_id is not None)
        self.known_products: frozenset[str] = frozenset(known)
        self._replay_pos = 0
        self._replay_in_flight = 0
        self._lock = threading.Lock()  # guards what other threads read
        self._tickers: dict[str, list[bytes]] = {p: [] for p in sorted(known)}
        self._ticker_counts: dict[str, int] = dict.fromkeys(sorted(known), 0)
        self._malformed: list[bytes] = []
        self._malformed_index = 0
        self._subscribes: list[dict[str, Any]] = []
        self._subscribed: set[str] = set()  # every product ever subscribed on ticker
        self._connections = 0
        self._server: Server | None = None

    # --- lifecycle ------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections (port 0 picks a free port)."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        cfg = self.config
        self._server = await serve(
            self._handle,
            cfg.host,
            cfg.port,
            compression="deflate" if cfg.compression else None,
            close_timeout=cfg.close_timeout,
            write_limit=cfg.write_limit,
        )

    async def stop(self) -> None:
        """Close every connection (1001 going away) and the listening socket."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()

    async def serve_forever(self) -> None:
        """Start if needed and serve until stop() is called or this is cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        host = self.config.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self.port}"

    # --- what tests inspect ----------------------------------------------

    @property
    def connections(self) -> int:
        """Number of WebSocket connections accepted so far."""
        return self._connections

    def sent_tickers(self) -> dict[str, list[bytes]]:
        """Per product, every ticker frame (snapshots included) fully sent, in order."""
        with self._lock:
            return {p: list(frames) for p, frames in self._tickers.items()}

    def ticker_counts(self) -> dict[str, int]:
        """Per product, how many ticker frames were sent (cheap, even with record=False)."""
        with self._lock:
            return dict(self._ticker_counts)

    def sent_malformed(self) -> list[bytes]:
        with self._lock:
            return list(self._malformed)

    def subscribe_messages(self) -> list[dict[str, Any]]:
        """Every subscribe message received (valid or not), parsed."""
        with self._lock:
            return copy.deepcopy(self._subscribes)

    def done(self) -> bool:
        """True once `count` trade tickers of every subscribed product were sent.

        With a replay file: once every line was handed out and sent.
        """
        if self._replay is not None:
            return self._replay_pos >= len(self._replay) and self._replay_in_flight == 0
        count = self.config.count
        if count is None:
            return False
        with self._lock:
            subscribed = list(self._subscribed)
        return bool(subscribed) and all(self._states[p].sent >= count for p in subscribed)

    # --- bookkeeping called by sessions (event loop thread) ---------------

    def _on_sent(self, items: list[Item]) -> None:
        """Count and record frames whose send() completed (one lock per batch)."""
        record = self.config.record
        with self._lock:
            for product, data, kind in items:
                if kind == TRADE:
                    assert product is not None
                    state = self._states[product]
                    state.in_flight -= 1
                    state.sent += 1
                elif kind >= REPLAY_TICKER:
                    self._replay_in_flight -= 1
                if kind != REPLAY_OTHER and product is not None:
                    self._ticker_counts[product] += 1
                    if record:
                        self._tickers[product].append(data)

    def _on_unsent(self, item: Item) -> None:
        # The frame may not have reached the client: free its slot in `count`
        # (a fresh ticker with a new sequence takes it; nothing is repeated).
        product, _, kind = item
        if kind == TRADE:
            assert product is not None
            self._states[product].in_flight -= 1
        elif kind >= REPLAY_TICKER:
            self._replay_in_flight -= 1

    def _next_malformed(self, product: str) -> bytes:
        state = self._states.get(product) or next(iter(self._states.values()))
        data = malformed_frame(self._malformed_index, state.peek_ticker(time.time_ns()))
        self._malformed_index += 1
        return data

    def _record_malformed(self, data: bytes) -> None:
        with self._lock:
            self._malformed.append(data)

    def _record_subscribe(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._subscribes.append(message)

    def _note_subscribed(self, products: list[str]) -> None:
        with self._lock:
            self._subscribed.update(products)

    async def _handle(self, ws: ServerConnection) -> None:
        self._connections += 1
        log.debug("connection %d from %s", self._connections, ws.remote_address)
        # ConnectionClosed: the client went away; the session has cleaned up.
        with contextlib.suppress(ConnectionClosed):
            await Session(self, ws).run()
