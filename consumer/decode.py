"""Kafka records -> rows for `order`, skipped snapshots, or dead letters with their reason."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Message
from pydantic import ValidationError

from consumer.sink.layout import Row
from shared.kafka_clients import HEADER_RECEIVED_NS
from shared.models import TRADE_TICKER, SnapshotTicker, mysql_datetime

MAX_RECEIVED_NS = 253402300800 * 1_000_000_000  # year 10000: past what DATETIME holds
VALIDATE_TRADE = TRADE_TICKER.validator.validate_json  # a dict: the row, without a copy
Headers = list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The ticker sent on subscribe: no trade, so no row (see README: snapshot tickers)."""


@dataclass(slots=True)
class Batch:
    """One poll's records, sorted into what the writer does with each."""

    rows: list[Row] = field(default_factory=list)
    rejected: list[tuple[Message, str]] = field(default_factory=list)
    snapshots: int = 0
    last_offset: int = -1
    received_ns: list[int] = field(default_factory=list)  # live only: for the latency metric


# decode(records, product, partition, keep_received): what a writer calls on each poll.
Decoder = Callable[[list[Message], str, int, bool], Batch]


def decode_batch(
    messages: list[Message], product: str, partition: int, keep_received: bool
) -> Batch:
    """Decode error-free records of `product`'s partition, in offset order.

    This loop is most of the consumer's CPU per row: pydantic-core's validator is called
    directly and the record is validated once, whatever it turns out to be.
    """
    batch = Batch()
    rows, received, rejected = batch.rows, batch.received_ns, batch.rejected
    validate = VALIDATE_TRADE
    for message in messages:
        value = message.value()
        nanoseconds = received_ns(message.headers())
        if not value:
            rejected.append((message, "empty record"))
            continue
        try:
            row: Row = validate(value)  # the validated fields, named as the columns
        except ValidationError as error:
            outcome = snapshot_or_rejected(value, error, product)
            if isinstance(outcome, Rejected):
                rejected.append((message, outcome.reason))
            else:
                batch.snapshots += 1
            continue
        if row["product_id"] != product:
            reason = f"product_id {row['product_id']!r} on the partition of {product}"
            rejected.append((message, reason))
            continue
        row["time"] = mysql_datetime(row["time"])  # type: ignore[arg-type]
        row["received_at"] = received_at(nanoseconds)
        row["kafka_partition"] = partition
        row["kafka_offset"] = message.offset()
        rows.append(row)
        if keep_received and nanoseconds is not None:
            received.append(nanoseconds)
    if messages:
        batch.last_offset = messages[-1].offset()  # type: ignore[assignment]
    return batch


def decode(
    value: bytes | None,
    nanoseconds: int | None,
    expected_product: str,
    partition: int,
    offset: int,
) -> Row | Snapshot | Rejected:
    """One raw frame from `expected_product`'s partition, as `decode_batch` decodes it."""
    headers: Headers = None if nanoseconds is None else {HEADER_RECEIVED_NS: str(nanoseconds)}
    message = Message(value=value, partition=partition, offset=offset, headers=headers)
    batch = decode_batch([message], expected_product, partition, keep_received=False)
    if batch.rows:
        return batch.rows[0]
    if batch.rejected:
        return Rejected(batch.rejected[0][1])
    return Snapshot()


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


def received_at(nanoseconds: int | None) -> str | None:
    """The receive time as a UTC DATETIME(6) literal, truncated to microseconds."""
    if nanoseconds is None or not 0 <= nanoseconds < MAX_RECEIVED_NS:
        return None
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    second = _SECONDS.get(seconds)
    if second is None:
        second = utc_second(seconds)
    return f"{second}.{fraction // 1000:06d}"


_SECONDS: dict[int, str] = {}  # a batch shares a few seconds: cached (kept small)


def utc_second(seconds: int) -> str:
    """`YYYY-MM-DD HH:MM:SS` of a Unix second, remembered for the next records."""
    if len(_SECONDS) > 4096:
        _SECONDS.clear()
    text = _SECONDS[seconds] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
    return text


def describe(error: ValidationError) -> str:
    """A short reason naming the first failing fields, without echoing huge inputs."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(part) for part in item["loc"]) or "frame"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
