"""Decoding and row formatting (INSERT values and LOAD DATA lines) of single records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from confluent_kafka import Message
from hypothesis import given
from hypothesis import strategies as st

from consumer.decode import Rejected, Snapshot, decode, decode_batch, received_at, received_ns
from consumer.sink.layout import COLUMNS, SQL_VALUES, TSV_LINES, Row
from shared.models import mysql_datetime, parse_feed_time
from tests.factories import patched, snapshot, ticker

EPOCH = datetime(1970, 1, 1)


@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**9))
def test_receive_time_is_truncated_to_the_microsecond(nanoseconds: int) -> None:
    expected = EPOCH + timedelta(microseconds=nanoseconds // 1000)
    text = received_at(received_ns([("received_ns", str(nanoseconds).encode())]))
    assert text == expected.isoformat(" ", "microseconds")


def test_missing_or_bad_receive_time_is_null() -> None:
    assert received_at(received_ns(None)) is None
    assert received_at(received_ns([("received_ns", b"soon")])) is None
    assert received_at(received_ns({"received_ns": b"-5"})) is None


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)),
    st.integers(min_value=0, max_value=9),
)
def test_mysql_literal_is_the_parsed_time(moment: datetime, digits: int) -> None:
    fraction = moment.strftime("%f") + "123"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction[:digits]}" if digits else "") + "Z"
    assert datetime.fromisoformat(mysql_datetime(text)).replace(tzinfo=UTC) == parse_feed_time(text)


def sql_tuple(row: Row) -> str:
    return SQL_VALUES.render([row])[:-1]


def tsv_line(row: Row) -> str:
    return TSV_LINES.render([row])


def test_row_literal_holds_the_values() -> None:
    row = decode(ticker("BTC-USD", 42, trade_id=7, best_ask_size=None), None, "BTC-USD", 1, 9)
    assert isinstance(row, dict)
    literal = sql_tuple(row)
    assert literal.startswith("('BTC-USD',42,7,'")
    assert ",NULL," in literal  # best_ask_size and received_at
    assert literal.endswith(",NULL,1,9)")
    assert sql_tuple(row) == literal  # rendering again (a retried batch) gives the same text


def test_load_data_line_holds_the_values_in_column_order() -> None:
    row = decode(ticker("BTC-USD", 42, trade_id=7, best_ask_size=None), 10**18, "BTC-USD", 1, 9)
    assert isinstance(row, dict)
    fields = tsv_line(row).removesuffix("\n").split("\t")
    assert len(fields) == len(COLUMNS)
    by_name = dict(zip((column.name for column in COLUMNS), fields, strict=True))
    assert by_name["product_id"] == "BTC-USD"
    assert (by_name["sequence"], by_name["trade_id"]) == ("42", "7")
    assert by_name["best_ask_size"] == "\\N"
    assert by_name["received_at"] == "2001-09-09 01:46:40.000000"
    assert (by_name["kafka_partition"], by_name["kafka_offset"]) == ("1", "9")
    assert by_name["price"] == row["price"] and by_name["time"] == row["time"]


@given(st.text(min_size=1, max_size=20))
def test_nothing_quote_like_reaches_the_sql(text: str) -> None:
    for field in ("price", "side", "product_id", "time", "best_bid_size"):
        outcome = decode(
            patched(ticker("BTC-USD", 1), **{field: "1" + text}), None, "BTC-USD", 1, 0
        )
        if isinstance(outcome, dict):
            assert not any(character in sql_tuple(outcome) for character in '\\"\0;') and (
                sql_tuple(outcome).count("'") % 2 == 0
            )
            line = tsv_line(outcome)
            assert line.count("\t") == len(COLUMNS) - 1 and line.count("\n") == 1
            assert line.replace("\\N", "").count("\\") == 0


def test_snapshot_is_recognised_with_or_without_sequence() -> None:
    assert isinstance(decode(snapshot("ETH-BTC", 5), None, "ETH-BTC", 0, 0), Snapshot)
    assert isinstance(decode(snapshot("ETH-BTC"), None, "ETH-BTC", 0, 0), Snapshot)
    assert isinstance(decode(b'{"type":"heartbeat"}', None, "ETH-BTC", 0, 0), Rejected)


def test_a_ticker_without_trade_fields_must_still_be_a_well_formed_snapshot() -> None:
    nan_price = b'{"type":"ticker","sequence":1,"product_id":"BTC-USD","price":"NaN"}'
    for frame in (b'{"type":"ticker","product_id":"BTC-USD"}', nan_price):
        assert isinstance(decode(frame, None, "BTC-USD", 1, 0), Rejected)
    assert isinstance(decode(snapshot("ETH-BTC"), None, "BTC-USD", 1, 0), Rejected)


def test_a_valid_ticker_of_2_mib_is_a_row_and_big_garbage_a_short_reason() -> None:
    # The producer publishes a valid ticker whatever its size: its extra field is not stored.
    memo = "x" * 2 * 1024 * 1024
    big = ticker("BTC-USD", 42, trade_id=7, memo=memo)
    row = decode(big, None, "BTC-USD", 1, 9)
    assert isinstance(row, dict) and "memo" not in row
    assert row == decode(ticker("BTC-USD", 42, trade_id=7), None, "BTC-USD", 1, 9)
    message = Message("t", 1, 9, b"BTC-USD", big, headers=[("source", b"test")])
    assert decode_batch([message], "BTC-USD", 1, keep_received=False).rows == [row]
    garbage = decode(ticker("BTC-USD", 42, price=memo), None, "BTC-USD", 1, 9)
    assert isinstance(garbage, Rejected) and len(garbage.reason) < 200  # never echoes it


header_values = st.one_of(
    st.none(),
    st.integers(min_value=-(10**20), max_value=10**21).map(lambda n: str(n).encode()),
    st.sampled_from([b"", b"soon", b" 17", b"1_000", b"\xff"]),
)
frames = st.one_of(
    st.builds(lambda n: ticker("BTC-USD", n), st.integers(min_value=1, max_value=10**12)),
    st.builds(lambda n: ticker("ETH-BTC", n), st.integers(min_value=1, max_value=10**12)),
    st.builds(lambda n: ticker("BTC-USD", n, best_bid_size=None), st.integers(1, 10**6)),
    st.builds(lambda t: ticker("BTC-USD", 7, time=t), st.text(max_size=32)),
    st.builds(lambda p: ticker("BTC-USD", 7, price=p), st.text(max_size=24)),
    st.just(snapshot("BTC-USD")),
    st.binary(max_size=64),
)


@given(st.lists(st.tuples(frames, header_values, st.booleans()), min_size=1, max_size=12))
def test_a_batch_decodes_as_each_record_would_alone(
    records: list[tuple[bytes, bytes | None, bool]],
) -> None:
    """A batch decodes as its records would one by one, wherever their receive-time header is."""
    messages = []
    for offset, (frame, header, header_first) in enumerate(records):
        headers: list[tuple[str, str | bytes | None]] = []
        if header is not None:
            headers.append(("received_ns", header))
        headers.insert(0 if header_first else len(headers), ("source", b"test"))
        messages.append(Message("t", 1, offset, b"BTC-USD", frame, headers=headers))
    batch = decode_batch(messages, "BTC-USD", 1, keep_received=True)
    rows, rejected, snapshots = [], [], 0
    for offset, message in enumerate(messages):
        nanoseconds = received_ns(message.headers())
        outcome = decode(message.value(), nanoseconds, "BTC-USD", 1, offset)
        if isinstance(outcome, Rejected):
            rejected.append((offset, outcome.reason))
        elif isinstance(outcome, Snapshot):
            snapshots += 1
        else:
            rows.append(outcome)
    assert batch.rows == rows
    assert [(m.offset(), reason) for m, reason in batch.rejected] == rejected
    assert batch.snapshots == snapshots
    assert batch.last_offset == len(records) - 1
