"""The Simulator: the listening socket over the market (what tests inspect lives there).

One port serves both sides: a request with `Upgrade: websocket` becomes a feed
connection (session.py), any other HTTP request is answered by the REST side
(rest.py) through websockets' process_request hook. One port keeps one URL per
simulator in tests, compose and the demo, and needs no HTTP server dependency.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .config import SimulatorConfig
from .market import Market
from .rest import RestApi, RestRequest
from .session import Session
from .trades import Trade

log = logging.getLogger("simulator")


class Simulator:
    """An asyncio WebSocket server that behaves like Coinbase's Exchange feed.

    The market broadcasts like the real feed: every connection subscribed to
    a product gets each of its ticks, with the same sequence; a reconnecting
    client continues the same walk and misses what was sent while it was
    away. A replay has one cursor, broadcast the same way. Every trade is
    kept, and served at `rest_url`/products/{id}/trades (rest.py).

    Accessors (sent_tickers() etc.) may be called from any thread and
    return copies.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self._market = Market(self.config)
        self._rest = RestApi(self.config, self._market)
        self.known_products = self._market.known_products
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
            process_request=self._route,
        )
        self._market.start()

    async def stop(self) -> None:
        """Close every connection (1001 going away) and the listening socket."""
        if self._server is None:
            return
        await self._market.stop()
        self._server.close()
        await self._server.wait_closed()

    async def serve_forever(self) -> None:
        """Start if needed and serve until stop() is called or this is cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self._market.stop()

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

    @property
    def rest_url(self) -> str:
        """The REST API's base URL (same port): GET {rest_url}/products/{id}/trades."""
        return "http" + self.url[2:]

    # --- what tests inspect ----------------------------------------------

    @property
    def connections(self) -> int:
        """Number of WebSocket connections accepted so far."""
        return self._connections

    def sent_tickers(self) -> dict[str, list[bytes]]:
        """Per product, every ticker generated (snapshots included), once, in broadcast order."""
        return self._market.sent_tickers()

    def delivered_tickers(self) -> dict[str, list[bytes]]:
        """Per product, the tickers whose write to at least one connection completed."""
        return self._market.delivered_tickers()

    def ticker_counts(self) -> dict[str, int]:
        """Per product, how many ticker frames were generated (cheap, even with record=False)."""
        return self._market.ticker_counts()

    def sent_malformed(self) -> list[bytes]:
        return self._market.sent_malformed()

    def trades(self) -> dict[str, list[Trade]]:
        """Per generated product, every trade made so far, oldest first, trade ids
        contiguous: the one made before the start (the first last_match), and every
        trade since, whether or not any connection received it (the newest
        trade_history of them). Trade.frame() is its exact `match` frame."""
        return self._market.trades()

    def trade_counts(self) -> dict[str, int]:
        """Per generated product, how many trades were made (cheap)."""
        return self._market.trade_counts()

    def delivered_trade_ids(self) -> dict[str, list[int]]:
        """Per generated product, ascending ids of the trades whose match or last_match
        frame was written to at least one connection (kept only with `record`)."""
        return self._market.delivered_trade_ids()

    def rest_counts(self) -> dict[str, int]:
        """REST requests answered: {"requests", "ok", "throttled" (429), "faulted",
        "rejected" (other 4xx)} (cheap, even with record=False)."""
        return self._rest.counts()

    def rest_requests(self) -> list[RestRequest]:
        """Every REST request answered, in order: (at, path, status, fault, served), served
        the (newest, oldest) trade id its body carried (kept only with `record`)."""
        return self._rest.requests()

    def subscribe_messages(self) -> list[dict[str, Any]]:
        """Every subscribe message received (valid or not), parsed."""
        return self._market.subscribe_messages()

    def done(self) -> bool:
        """True once `count` trade tickers of every subscribed product (or the
        whole capture) were generated and every open connection sent its share."""
        return self._market.done()

    def _route(self, ws: ServerConnection, request: Request) -> Response | None:
        """None lets the WebSocket handshake go on; anything else is a REST answer."""
        if "websocket" in request.headers.get("Upgrade", "").lower():
            return None
        return self._rest.answer(request)

    async def _handle(self, ws: ServerConnection) -> None:
        self._connections += 1
        log.debug("connection %d from %s", self._connections, ws.remote_address)
        # ConnectionClosed: the client went away; the session has cleaned up.
        with contextlib.suppress(ConnectionClosed):
            await Session(self._market, ws).run()
