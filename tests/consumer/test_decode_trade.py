"""Trade-tape records -> `trade` rows or dead-letter reasons, without a broker; and the
tape switch: no `trade` writer unless KAFKA_TRADES_TOPIC is set."""

from __future__ import annotations

import orjson
import pytest
from confluent_kafka import Message

from consumer.decode_trade import decode_trade_batch
from consumer.settings import ConsumerSettings
from consumer.sink import TRADE
from consumer.streams import ORDERS, TRADES, streams

MATCH = {
    "type": "match",
    "trade_id": 74,
    "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
    "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1",
    "side": "sell",
    "size": "0.00513192",
    "price": "38245.32",
    "product_id": "BTC-USD",
    "sequence": 50,
    "time": "2026-12-07T01:02:03.123456789Z",
}
REST = {
    "time": "2026-12-07T01:02:04.5Z",
    "trade_id": 75,
    "price": "10.00",
    "size": "1",
    "side": "buy",
}


def record(value: object, source: bytes = b"wss://feed", key: bytes | None = b"BTC-USD") -> Message:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    headers: list[tuple[str, str | bytes | None]] = [
        ("received_ns", b"1796000000123456789"),
        ("source", source),
    ]
    return Message(value=raw, key=key, partition=1, offset=7, headers=headers)


def one(message: Message) -> dict[str, object] | str:
    batch = decode_trade_batch([message], "BTC-USD", 1, keep_received=False)
    assert batch.last_offset == 7
    return batch.rows[0] if batch.rows else batch.rejected[0][1]


def test_a_match_becomes_a_ws_row_with_every_field() -> None:
    row = one(record(MATCH))
    assert isinstance(row, dict)
    assert TRADE.tsv_lines.render([row]) == (
        "BTC-USD\t74\tsell\t38245.32\t0.00513192\t2026-12-07 01:02:03.123456\t50\t"
        "ac928c66-ca53-498f-9c13-a110027a60e8\t132fb6ae-456b-4654-b4e0-d681ac05cea1\tws\t"
        "2026-11-30 00:53:20.123456\t1\t7\n"
    )
    assert one(record(MATCH | {"type": "last_match"})) == row | {"type": "last_match"}


def test_a_rest_trade_becomes_a_rest_row_with_nulls() -> None:
    row = one(record(REST, source=b"rest"))
    assert isinstance(row, dict)
    assert TRADE.sql_values.render([row]) == (
        "('BTC-USD',75,'buy','10.00','1','2026-12-07 01:02:04.5',NULL,NULL,NULL,'rest',"
        "'2026-11-30 00:53:20.123456',1,7),"
    )
    assert isinstance(one(record(REST, source=b"rest", key=None)), dict)  # the partition says


@pytest.mark.parametrize(
    ("value", "source", "says"),
    [
        (MATCH | {"price": "1e-5"}, b"wss://feed", "price"),
        (MATCH | {"size": "1." + "0" * 19}, b"wss://feed", "size"),
        (MATCH | {"price": "123456789012345678901"}, b"wss://feed", "price"),
        (MATCH | {"trade_id": "74"}, b"wss://feed", "trade_id"),
        ({k: v for k, v in MATCH.items() if k != "trade_id"}, b"wss://feed", "trade_id"),
        (MATCH | {"maker_order_id": "x'; DROP"}, b"wss://feed", "maker_order_id"),
        (MATCH | {"time": "2026-12-07T01:02:03+01:00"}, b"wss://feed", "time"),
        (MATCH | {"product_id": "ETH-BTC"}, b"wss://feed", "ETH-BTC"),
        (REST, b"wss://feed", "match: type"),  # a REST object without its header
        (REST | {"price": 10.0}, b"rest", "REST trade: price"),
        (b"<html><body>502 Bad Gateway</body></html>", b"rest", "Invalid JSON"),
        (b"", b"rest", "empty record"),
    ],
)
def test_a_bad_record_is_a_dead_letter_with_its_reason(
    value: object, source: bytes, says: str
) -> None:
    reason = one(record(value, source=source))
    assert isinstance(reason, str) and says in reason, reason


def test_a_rest_trade_keyed_for_another_product_is_a_dead_letter() -> None:
    reason = one(record(REST, source=b"rest", key=b"ETH-BTC"))
    assert isinstance(reason, str) and "ETH-BTC" in reason


def test_no_trade_writer_unless_the_tape_is_on() -> None:
    assert streams(ConsumerSettings(kafka_trades_topic="")) == (ORDERS,)
    assert streams(ConsumerSettings(kafka_trades_topic="coinbase.matches")) == (ORDERS, TRADES)
