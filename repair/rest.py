"""Coinbase's REST trade history: one page per request, paced by a token bucket, retried with
backoff (tenacity) on 429, 5xx, no answer and bad bodies; a refusal that retrying cannot fix
(another 4xx) is `Fatal`.

`after=X&limit=L` returns the L trades just older than X, newest first (coinbase-protocol.md),
so a caller that asks `after=first stored id above the hole, limit=ids still missing` never
requests an id it holds.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from repair import metrics
from repair.body import BadBody, RestTrade, parse_page
from shared.failures import Fatal
from shared.logs import RepeatedErrors, get_logger

log = get_logger(__name__)

MAX_LIMIT = 1000  # Coinbase's largest page
MAX_BODY_BYTES = 8 * 1024 * 1024  # a full page is ~100 KB; more is not a trades page
USER_AGENT = "coinbase-pipeline-repair/0.1"
MAX_BACKOFF_S = 10.0


class Transient(Exception):
    """A failed request that a later one may get right."""

    def __init__(self, kind: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after_s = retry_after_s


class RestGone(Fatal):
    """REST failed for longer than REPAIR_REST_GIVE_UP_S, or refused for good."""


class RestRefused(RestGone):
    """A 4xx other than 429: the request itself is wrong (product, URL); retrying won't help."""


class Stopped(Exception):
    """Shutdown was asked for while waiting."""


@dataclass
class Page:
    trades: list[RestTrade]
    received_ns: int


class TokenBucket:
    """At most `rate` requests a second, none saved up (Coinbase counts per second).
    A 429 halves the pace; each success wins a little back (up to `rate`)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_rate = self.rate = rate
        self._clock = clock
        self._next = clock()

    def delay(self) -> float:
        """Seconds to wait before the next request may go; books that request."""
        now = self._clock()
        wait = max(0.0, self._next - now)
        self._next = max(now, self._next) + 1.0 / self.rate
        return wait

    def throttled(self) -> None:
        self.rate = max(self.max_rate / 16, self.rate / 2)

    def succeeded(self) -> None:
        self.rate = min(self.max_rate, self.rate + self.max_rate / 20)


@dataclass
class RestCounts:
    requests: int = 0
    throttled: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # kind -> count


class RestClient:
    """Fetches trade pages from `base_url` (one connection, reopened when closed)."""

    def __init__(
        self,
        base_url: str,
        rate: float,
        timeout_s: float,
        give_up_s: float,
        stop: threading.Event,
    ) -> None:
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self._timeout_s = timeout_s
        self._give_up_s = give_up_s
        self._stop = stop
        self.bucket = TokenBucket(rate)
        self.counts = RestCounts()
        self._connection: http.client.HTTPConnection | None = None
        self._errors = RepeatedErrors(log, "REST request failed; retrying", level="warning")

    def page(self, product: str, after: int, limit: int) -> Page:
        """The `limit` trades older than `after`, newest first; retried until give-up."""
        query = f"after={after}&limit={limit}"
        return self._retried(f"{self._prefix}/products/{product}/trades?{query}")

    def newest(self, product: str) -> int | None:
        """The exchange's newest trade id (None: it has no trades)."""
        trades = self._retried(f"{self._prefix}/products/{product}/trades?limit=1").trades
        return trades[0].trade_id if trades else None

    def _retried(self, path: str) -> Page:
        retrying = Retrying(
            retry=retry_if_exception_type(Transient),
            wait=self._wait,
            stop=stop_after_delay(self._give_up_s),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._request, path)
        except Transient as exc:
            raise RestGone(
                f"Coinbase REST failed for {self._give_up_s:g} s on {path}: {exc}"
            ) from None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        backoff = wait_random_exponential(multiplier=0.25, max=MAX_BACKOFF_S)(state)
        if isinstance(failure, Transient) and failure.retry_after_s is not None:
            backoff = max(backoff, failure.retry_after_s)
        # The last try comes at the give-up time, not a whole backoff after it.
        left = self._give_up_s - (state.seconds_since_start or 0.0)
        return max(0.0, min(backoff, left))

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise Stopped

    def _request(self, path: str) -> Page:
        self._sleep(self.bucket.delay())
        self.counts.requests += 1
        metrics.REQUESTS.inc()
        try:
            status, headers, body = self._get(path)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            self._connection = None
            raise self._failed("unreachable", f"no answer: {exc!r}") from None
        received_ns = time.time_ns()
        if status == 429:
            self.counts.throttled += 1
            metrics.THROTTLED.inc()
            self.bucket.throttled()
            raise self._failed("throttled", "429", _retry_after(headers.get("retry-after")))
        if status >= 500:
            raise self._failed("server_error", f"{status}: {body[:200]!r}")
        if status != 200:
            raise RestRefused(f"Coinbase REST refused {path}: {status} {body[:200]!r}")
        try:
            trades = parse_page(body)
        except BadBody as bad:
            raise self._failed(bad.kind, f"bad body from {path}: {bad}") from None
        self.bucket.succeeded()
        return Page(trades, received_ns)

    def _failed(self, kind: str, message: str, retry_after_s: float | None = None) -> Transient:
        self.counts.failed[kind] = self.counts.failed.get(kind, 0) + 1
        metrics.REST_FAILURES.labels(kind=kind).inc()
        self._errors.add(kind, error=message)
        return Transient(kind, message, retry_after_s)

    def _get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if self._connection is None:
            factory = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = factory(self._host, timeout=self._timeout_s)
        connection = self._connection
        connection.request(
            "GET", path, headers={"User-Agent": USER_AGENT, "Accept": "application/json"}
        )
        response = connection.getresponse()
        body = response.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            self.close()
            self._connection = None
            raise http.client.HTTPException(f"body over {MAX_BODY_BYTES} bytes")
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, body


def _retry_after(text: str | None) -> float | None:
    try:
        return min(MAX_BACKOFF_S, max(0.0, float(text))) if text else None
    except ValueError:
        return None
