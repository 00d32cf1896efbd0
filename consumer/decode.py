"""One Kafka record -> a row for `order`, a skipped snapshot, or a dead letter with its reason."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from pydantic import ValidationError

from shared.kafka_clients import HEADER_RECEIVED_NS
from shared.models import DECIMAL_FIELDS, SnapshotTicker, TradeTicker, mysql_datetime

# Column order of every row tuple; the writer's INSERT lists the same names.
COLUMNS = (
    "product_id",
    "sequence",
    "trade_id",
    "side",
    *DECIMAL_FIELDS,
    "time",
    "received_at",
    "kafka_partition",
    "kafka_offset",
)
# A ticker is about 450 bytes; anything this big is not one, whatever it parses to.
MAX_FRAME_BYTES = 64 * 1024
# Values in COLUMNS order, each validated: decimal strings, ints, DATETIME literals, None.
Row = tuple[object, ...]
MAX_RECEIVED_NS = 253402300800 * 1_000_000_000  # year 10000: past what DATETIME holds
Headers = list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The ticker sent on subscribe: no trade, so no row (see README: snapshot tickers)."""


def decode(
    value: bytes | None,
    headers: Headers,
    expected_product: str,
    partition: int,
    offset: int,
) -> Row | Snapshot | Rejected:
    """Validate one raw frame from `expected_product`'s partition."""
    if not value:
        return Rejected("empty record")
    if len(value) > MAX_FRAME_BYTES:
        return Rejected(f"record of {len(value)} bytes is larger than a ticker can be")
    try:
        ticker = TradeTicker.model_validate_json(value)
    except ValidationError as exc:
        return snapshot_or_rejected(value, exc, expected_product)
    if ticker.product_id != expected_product:
        return Rejected(f"product_id {ticker.product_id!r} on the partition of {expected_product}")
    return (
        ticker.product_id,
        ticker.sequence,
        ticker.trade_id,
        ticker.side,
        ticker.price,
        ticker.last_size,
        ticker.best_bid,
        ticker.best_bid_size,
        ticker.best_ask,
        ticker.best_ask_size,
        ticker.open_24h,
        ticker.volume_24h,
        ticker.low_24h,
        ticker.high_24h,
        ticker.volume_30d,
        mysql_datetime(ticker.time),
        received_at(headers),
        partition,
        offset,
    )


def snapshot_or_rejected(
    value: bytes, error: ValidationError, expected_product: str
) -> Snapshot | Rejected:
    """Not a trade ticker: a well-formed subscribe-time snapshot, or a dead letter."""
    try:
        snapshot = SnapshotTicker.model_validate_json(value)
    except ValidationError:
        return Rejected(describe(error))
    if snapshot.product_id != expected_product:
        return Rejected(
            f"snapshot for {snapshot.product_id!r} on the partition of {expected_product}"
        )
    return Snapshot()


def received_ns(headers: Headers) -> int | None:
    """The producer's receive time (ns since the epoch) from the record's header."""
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    for name, raw in pairs:
        if name == HEADER_RECEIVED_NS and raw is not None:
            try:
                return int(raw)
            except ValueError:
                return None
    return None


def received_at(headers: Headers) -> str | None:
    """The receive time as a UTC DATETIME(6) literal, truncated to microseconds."""
    nanoseconds = received_ns(headers)
    if nanoseconds is None or not 0 <= nanoseconds < MAX_RECEIVED_NS:
        return None
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    return f"{utc_second(seconds)}.{fraction // 1000:06d}"


@functools.lru_cache(maxsize=256)
def utc_second(seconds: int) -> str:
    """`YYYY-MM-DD HH:MM:SS` of a Unix second; cached, since a batch shares a few seconds."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def describe(error: ValidationError) -> str:
    """A short reason naming the first failing fields, without echoing huge inputs."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(part) for part in item["loc"]) or "frame"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
