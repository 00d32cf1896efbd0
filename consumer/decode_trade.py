"""Kafka records of the trades topic -> rows for `trade`, or dead letters with their reason.

Two kinds of record share the topic, told apart by the `source` header:
- from the producer (header = the feed's URL): a raw `match` / `last_match` frame, stored
  with source='ws', its sequence and order ids;
- from the repair command (header `source=rest`): a REST trade object
  `{"time","trade_id","price","size","side"}` with no product (its partition names it, and
  its key must agree), stored with source='rest' and NULL sequence and order ids.
Same rules as `order` (consumer/decode.py): exact decimals that fit DECIMAL(38,18), UTC
times cut to microseconds, a product that is not the partition's is a dead letter.
"""

from __future__ import annotations

from confluent_kafka import Message
from pydantic import ValidationError

from consumer.decode import Batch, Headers, describe, received_at
from consumer.sink.layout import Row
from shared.kafka_clients import HEADER_RECEIVED_NS, HEADER_SOURCE
from shared.models import MATCH_FRAME, REST_TRADE, mysql_datetime

SOURCE_REST = b"rest"  # the repair command's `source` header
VALIDATE_MATCH = MATCH_FRAME.validator.validate_json
VALIDATE_REST = REST_TRADE.validator.validate_json


def decode_trade_batch(
    messages: list[Message], product: str, partition: int, keep_received: bool
) -> Batch:
    """Decode error-free records of `product`'s trades partition, in offset order."""
    batch = Batch()
    for message in messages:
        nanoseconds, source = trade_headers(message.headers())
        row = trade_row(message, product, source)
        if isinstance(row, str):
            batch.rejected.append((message, row))
            continue
        row["received_at"] = received_at(nanoseconds)
        row["kafka_partition"] = partition
        row["kafka_offset"] = message.offset()
        batch.rows.append(row)
        if keep_received and nanoseconds is not None:
            batch.received_ns.append(nanoseconds)
    if messages:
        batch.last_offset = messages[-1].offset()  # type: ignore[assignment]
    return batch


def trade_row(message: Message, product: str, source: bytes | None) -> Row | str:
    """The row of one record (without the Kafka columns), or why it is a dead letter."""
    value = message.value()
    if not value:
        return "empty record"
    rest = source == SOURCE_REST
    try:
        row: Row = (VALIDATE_REST if rest else VALIDATE_MATCH)(value)
    except ValidationError as error:
        return ("REST trade: " if rest else "match: ") + describe(error)
    if rest:
        key = message.key()
        if key is not None and key != product.encode():
            return f"REST trade keyed {key[:40]!r} on the partition of {product}"
        row["product_id"] = product
        row["source"] = "rest"
    elif row["product_id"] != product:
        return f"product_id {row['product_id']!r} on the partition of {product}"
    else:
        row["source"] = "ws"
    row["time"] = mysql_datetime(row["time"])  # type: ignore[arg-type]
    return row


def trade_headers(headers: Headers) -> tuple[int | None, bytes | None]:
    """(receive time in ns, `source`) from a record's headers; None for what is missing."""
    nanoseconds: int | None = None
    source: bytes | None = None
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    for name, raw in pairs:
        if raw is None:
            continue
        if name == HEADER_RECEIVED_NS:
            try:
                nanoseconds = int(raw)
            except ValueError:
                nanoseconds = None
        elif name == HEADER_SOURCE:
            source = raw.encode() if isinstance(raw, str) else raw
    return nanoseconds, source
