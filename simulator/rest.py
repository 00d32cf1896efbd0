"""GET /products/{product_id}/trades: Coinbase's trade history, over plain HTTP.

Served on the feed's own port (server.py routes every request without an
`Upgrade: websocket` header here), so one URL names the whole simulator:
`ws://host:port` for the feed, `http://host:port` for REST. Each answer
closes its connection (`Connection: close`); only GET is served.

The contract (as coinbase-protocol.md describes Coinbase's):

- 200: a JSON array of {"time","trade_id","price","size","side"}, newest first
  (`side` the maker's; `price` and `size` with 8 decimals; `time` the feed's
  text). `after=X`: the page of trades older than X; `before=X`: the page newer
  than X; neither: the newest page; `limit` 1..1000, default 1000. Headers
  CB-BEFORE (the page's newest trade id: the cursor for the next newer page)
  and CB-AFTER (its oldest: the cursor for the next older page); an empty page
  has neither.
- 429 {"message": "Public rate limit exceeded"} beyond the token bucket
  (rest_rate requests/s, rest_burst at once; every request takes a token).
- 404 {"message": "NotFound"}: unknown product or path. 400 {"message": ...}: a
  cursor or limit that is not a whole number in range, or both before and after
  (Coinbase does not document combining them, so a client must not rely on it).
  405 for a method other than GET.
- Faults (rest_fault_share of well-formed trade requests, cycling through
  rest_fault_kinds): "html" 200 with an HTML page (a proxy's: the status does
  not warn); "truncated_json" 200 with the page cut in half; "wrong_types" 200
  with trade_id as a string and time, price and size as numbers (an empty page
  stays []); "server_error" 500 {"message": "Internal Server Error"}.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import NamedTuple, Protocol
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .config import SimulatorConfig
from .trades import Trade

log = logging.getLogger("simulator")

MAX_LIMIT = 1000
_TRADES_PATH = re.compile(r"^/products/([^/]+)/trades/?$")
_WHOLE_NUMBER = re.compile(r"^[0-9]{1,18}$")
_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service Temporarily Unavailable</title></head>"
    b"<body><h1>We&rsquo;ll be right back</h1><p>Please try again shortly.</p></body></html>"
)


class RestRequest(NamedTuple):
    """One request the REST side answered (kept with `record`)."""

    at: float  # time.monotonic() when answered
    path: str  # path and query string as sent
    status: int
    fault: str | None  # the fault kind answered instead of the page, if any
    served: tuple[int, int] | None  # (newest, oldest) trade id in the body; None: no trades


class TradeSource(Protocol):
    """What REST needs of the market."""

    known_products: frozenset[str]

    def trade_page(
        self, product: str, before: int | None, after: int | None, limit: int
    ) -> list[Trade]: ...


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; rate 0 never refuses."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        if self._rate == 0:
            return True
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class _Rejected(Exception):
    """A request answered with an error status (str(self) is the message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _response(status: int, body: bytes, content_type: str, headers: Headers) -> Response:
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Connection"] = "close"
    return Response(status, HTTPStatus(status).phrase, headers, body)


def _message(status: int, message: str) -> Response:
    body = json.dumps({"message": message}).encode()
    return _response(status, body, "application/json; charset=utf-8", Headers())


class RestApi:
    """Answers REST requests from the market's trade history; counts them for tests.

    answer() runs on the simulator's event loop; counts() and requests() may be
    called from any thread.
    """

    def __init__(self, config: SimulatorConfig, source: TradeSource) -> None:
        self._config = config
        self._source = source
        self._bucket = TokenBucket(config.rest_rate, config.rest_burst)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(("requests", "ok", "throttled", "faulted", "rejected"), 0)
        self._log: list[RestRequest] = []
        self._eligible = 0  # well-formed trade requests seen (drives the fault share)

    def counts(self) -> dict[str, int]:
        """{"requests": all answered, "ok": pages served right, "throttled": 429s,
        "faulted": fault answers, "rejected": other 4xx}."""
        with self._lock:
            return dict(self._counts)

    def requests(self) -> list[RestRequest]:
        """Every request answered, in order (kept only with `record`)."""
        with self._lock:
            return list(self._log)

    def answer(self, request: Request) -> Response:
        fault: str | None = None
        served: tuple[int, int] | None = None
        if not self._bucket.take():
            response, outcome = _message(429, "Public rate limit exceeded"), "throttled"
        else:
            try:
                query = self._parse(request)
            except _Rejected as rejected:
                response, outcome = _message(rejected.status, str(rejected)), "rejected"
            else:
                response, fault, served = self._trades(*query)
                outcome = "faulted" if fault else "ok"
        entry = RestRequest(time.monotonic(), request.path, response.status_code, fault, served)
        self._count(entry, outcome)
        return response

    def _trades(
        self, product: str, before: int | None, after: int | None, limit: int
    ) -> tuple[Response, str | None, tuple[int, int] | None]:
        """The page's answer, the fault put in its place if one is due, the ids it carried."""
        page = self._source.trade_page(product, before, after, limit)
        fault = self._fault_due()
        response = _page(page) if fault is None else _faulty_page(page, fault)
        carried = page and fault not in ("html", "server_error")
        return response, fault, (page[0].trade_id, page[-1].trade_id) if carried else None

    def _parse(self, request: Request) -> tuple[str, int | None, int | None, int]:
        if request.method != "GET":
            raise _Rejected(405, "Method Not Allowed")
        parts = urlsplit(request.path)
        match = _TRADES_PATH.match(parts.path)
        if match is None or match.group(1) not in self._source.known_products:
            raise _Rejected(404, "NotFound")
        pairs = parse_qs(parts.query, keep_blank_values=True)
        query = {key: values[-1] for key, values in pairs.items()}
        cursors: dict[str, int | None] = {}
        for name in ("before", "after", "limit"):
            value = query.get(name)
            if value is not None and not _WHOLE_NUMBER.match(value):
                raise _Rejected(400, f"Invalid {name}")
            cursors[name] = None if value is None else int(value)
        limit = MAX_LIMIT if cursors["limit"] is None else cursors["limit"]
        if not 1 <= limit <= MAX_LIMIT:
            raise _Rejected(400, f"Invalid limit: must be 1..{MAX_LIMIT}")
        if cursors["before"] is not None and cursors["after"] is not None:
            raise _Rejected(400, "before and after cannot be combined")
        return match.group(1), cursors["before"], cursors["after"], limit

    def _fault_due(self) -> str | None:
        """Every 1/share-th well-formed request (evenly spread), cycling through the kinds."""
        share = self._config.rest_fault_share
        self._eligible += 1
        n = self._eligible
        if int(n * share) == int((n - 1) * share):
            return None
        kinds = self._config.rest_fault_kinds
        return kinds[(int(n * share) - 1) % len(kinds)]

    def _count(self, entry: RestRequest, outcome: str) -> None:
        log.debug("REST %s -> %d %s", entry.path, entry.status, entry.fault or "")
        with self._lock:
            self._counts["requests"] += 1
            self._counts[outcome] += 1
            if self._config.record:
                self._log.append(entry)


def _cursor_headers(page: list[Trade]) -> Headers:
    headers = Headers()
    if page:
        headers["CB-BEFORE"] = str(page[0].trade_id)
        headers["CB-AFTER"] = str(page[-1].trade_id)
    return headers


def _body(page: list[Trade]) -> bytes:
    return ("[" + ",".join(trade.rest_text() for trade in page) + "]").encode()


def _page(page: list[Trade]) -> Response:
    return _response(200, _body(page), "application/json; charset=utf-8", _cursor_headers(page))


def _faulty_page(page: list[Trade], kind: str) -> Response:
    if kind == "html":
        return _response(200, _HTML_PAGE, "text/html; charset=utf-8", Headers())
    if kind == "server_error":
        return _message(500, "Internal Server Error")
    if kind == "truncated_json":
        body = _body(page)
        return _response(200, body[: len(body) // 2], "application/json", _cursor_headers(page))
    # "wrong_types": the right keys with the wrong JSON types.
    wrong = [
        {"time": time.time(), "trade_id": str(t.trade_id), "price": float(t.price),
         "size": float(t.size), "side": t.side}
        for t in page
    ]  # fmt: skip
    body = json.dumps(wrong).encode()
    return _response(200, body, "application/json", _cursor_headers(page))
