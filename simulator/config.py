"""Configuration of the feed simulator (one frozen dataclass, validated once)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# Products the simulator knows out of the box; the first three are the ones the
# pipeline subscribes to, the others make "many products" tests possible.
DEFAULT_PRODUCTS: tuple[str, ...] = (
    "ETH-BTC",
    "BTC-USD",
    "BTC-EUR",
    "ETH-USD",
    "ETH-EUR",
    "SOL-USD",
    "LTC-USD",
)

DropCode = int | Literal["abort"]

# Product ids are spliced into frames without JSON escaping, so they must be
# plain upper-case tokens (this is also what Coinbase uses).
_PRODUCT_RE = re.compile(r"^[A-Z0-9]{1,16}-[A-Z0-9]{1,16}$")

# Close codes an endpoint may put on the wire (RFC 6455 section 7.4).
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})

# What a faulted REST answer can be (SimulatorConfig.rest_fault_kinds); see rest.py.
REST_FAULT_KINDS: tuple[str, ...] = ("html", "truncated_json", "wrong_types", "server_error")


def _valid_close_code(code: int) -> bool:
    return code in _SENDABLE_CODES or 3000 <= code <= 4999


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that shapes one simulated Coinbase Exchange feed.

    Counts of "messages" in the fault options are data frames of one
    connection: snapshots, trade tickers, `match` and `last_match` frames,
    malformed frames and replayed lines. Heartbeats are not counted, so fault
    points are deterministic.

    - rate: trade tickers per second per subscribed product (with a replay
      file: lines per second); 0 sends as fast as the client reads.
    - count: trade tickers (batches of trades) per product in total, shared
      by all connections; afterwards only heartbeats flow and the connection
      stays open.
    - replay_file: JSON lines sent verbatim instead of generated tickers,
      one cursor for the whole simulator (a reconnect continues, like the
      live feed); lines of unsubscribed products are skipped, lines
      without product_id always sent; no generated heartbeats.
    - drop_code: 1000/1001/1011 (any sendable close code) closes after the
      frames sent so far; "abort" drops the TCP connection with no close
      frame (the client sees 1006).
    - stall_*: after N frames send nothing at all, heartbeats included, for
      stall_seconds, keeping the socket open; then carry on.
    - malformed_every: every K-th data frame is garbage instead, cycling
      through faults.MALFORMED_KINDS.
    - error_after_messages: an {"type":"error"} frame, then close 1011.

    The market broadcasts, like Coinbase: one clock per product makes trade
    ticks at `rate` from its first subscription on, and every connection
    subscribed at that moment gets each tick; a connection that is down
    misses it. These faults shape what the market sends to everyone:

    - out_of_order_every: every N-th trade tick of a product is held back
      and sent right after the next one (a real, lower sequence arriving late).
    - sequence_reset_after: after N trade ticks a product's sequence jumps
      back to tape.RESET_SEQUENCE and climbs from there (distinct ticks).
    - stray_sequence_after: the (N+1)-th trade tick of a product carries
      tape.STRAY_SEQUENCE (9e11); the next one is back to normal.
    - drop_one_every: every T seconds the oldest open connection is dropped
      with drop_code while the others stay up (a lone one is dropped too);
      the first drop comes T seconds after the first subscription.

    Trades: each trade tick is a batch of 1..4 trades (trade ids +1 each), sent
    on the `matches` channel and kept in the history REST serves:

    - autostart: every product's clock starts with the simulator instead of at
      its first subscription, so REST has trades before any feed connection
      (generated markets at a paced rate; rate 0 waits for a reader).

    - trade_history: trades kept per product (the oldest are forgotten,
      for REST and trades() alike); ~330 bytes each, so ~80 MB a product at most.
    - rest_rate / rest_burst: the token bucket of GET /products/{id}/trades
      (all REST requests share one bucket); beyond it, 429. rest_rate 0 = no limit.
    - rest_fault_share: this share of well-formed trade requests (0..1, spread
      evenly: 0.25 = every 4th) get a faulted answer instead, cycling through
      rest_fault_kinds (see rest.py).
    """

    host: str = "127.0.0.1"
    port: int = 0  # 0 = let the OS pick a free port
    products: tuple[str, ...] = DEFAULT_PRODUCTS
    rate: float = 10.0  # ticker frames per second per product; 0 = as fast as possible
    seed: int | None = None  # None = different random walk every run
    count: int | None = None  # trade ticks per product generated, then heartbeats only
    snapshot: bool = True  # one snapshot ticker per product after subscribing
    snapshot_without_sequence: bool = False
    subscribe_timeout: float = 5.0
    heartbeat_interval: float = 1.0
    replay_file: str | Path | None = None
    # Faults, applied to every connection.
    drop_after_messages: int | None = None
    drop_after_seconds: float | None = None
    drop_code: DropCode = 1000
    stall_after_messages: int | None = None
    stall_seconds: float = 10.0
    malformed_every: int | None = None
    error_after_messages: int | None = None
    # Market faults, seen by every connection.
    out_of_order_every: int | None = None
    sequence_reset_after: int | None = None
    stray_sequence_after: int | None = None
    drop_one_every: float | None = None  # seconds
    # Trades and the REST endpoint.
    autostart: bool = False
    trade_history: int = 250_000
    rest_rate: float = 10.0  # requests per second; 0 = unlimited
    rest_burst: int = 15
    rest_fault_share: float = 0.0
    rest_fault_kinds: tuple[str, ...] = REST_FAULT_KINDS
    # Transport knobs.
    compression: bool = False  # permessage-deflate: CPU per frame on both ends
    close_timeout: float = 2.0
    write_limit: int = 2**16  # bytes buffered per client before send() waits
    # Keep every sent ticker for sent_tickers(), delivered trade ids and the REST request
    # log: ~400 bytes a frame, so ~16 MB/s at 40k frames/s. Turn off for benchmarks and
    # long runs (ticker_counts(), trades() and rest_counts() still work).
    record: bool = True

    def __post_init__(self) -> None:
        # Accept any iterable of products (a list from a test, say) but store a tuple
        # so the config stays hashable and immutable.
        object.__setattr__(self, "products", tuple(self.products))
        object.__setattr__(self, "rest_fault_kinds", tuple(self.rest_fault_kinds))
        if not self.products:
            raise ValueError("products must not be empty")
        for product in self.products:
            if not isinstance(product, str) or not _PRODUCT_RE.match(product):
                raise ValueError(f"invalid product id {product!r} (expected e.g. 'BTC-USD')")
        if len(set(self.products)) != len(self.products):
            raise ValueError("products must be unique")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be in 0..65535")
        if not (self.rate >= 0 and math.isfinite(self.rate)):
            raise ValueError("rate must be a finite number >= 0")
        counts = (
            "count", "drop_after_messages", "stall_after_messages", "error_after_messages",
            "sequence_reset_after", "stray_sequence_after",
        )  # fmt: skip
        for name in counts:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.malformed_every is not None and self.malformed_every < 1:
            raise ValueError("malformed_every must be >= 1")
        # Every tick held back would leave none to overtake it.
        if self.out_of_order_every is not None and self.out_of_order_every < 2:
            raise ValueError("out_of_order_every must be >= 2")
        for name in ("subscribe_timeout", "heartbeat_interval", "close_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("drop_after_seconds", "drop_one_every"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be > 0")
        if not self.stall_seconds >= 0:
            raise ValueError("stall_seconds must be >= 0")
        if self.drop_code != "abort" and not (
            isinstance(self.drop_code, int) and _valid_close_code(self.drop_code)
        ):
            raise ValueError(f"drop_code must be a close code or 'abort', not {self.drop_code!r}")
        if self.write_limit < 1024:
            raise ValueError("write_limit must be >= 1024")
        self._check_trades()

    def _check_trades(self) -> None:
        if self.trade_history < 1:
            raise ValueError("trade_history must be >= 1")
        if not (self.rest_rate >= 0 and math.isfinite(self.rest_rate)):
            raise ValueError("rest_rate must be a finite number >= 0")
        if self.rest_burst < 1:
            raise ValueError("rest_burst must be >= 1")
        if not 0 <= self.rest_fault_share <= 1:
            raise ValueError("rest_fault_share must be in 0..1")
        unknown = set(self.rest_fault_kinds) - set(REST_FAULT_KINDS)
        if unknown or not self.rest_fault_kinds:
            raise ValueError(f"rest_fault_kinds must be some of {', '.join(REST_FAULT_KINDS)}")
