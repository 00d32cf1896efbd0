"""The trade tape through the consumer, real broker and MariaDB, on both write paths: `trade`
rows exact field by field (feed frames and REST objects), one row per trade id whatever the
source (first wins), bad records dead-lettered and committed past, offsets only after the
write, and a `trade` the writer may not insert into ending the service with one line."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from ops.http import http_get
from shared.models import parse_feed_time
from tests.conftest import Pipeline
from tests.factories import (
    fatal_line,
    free_port,
    read_all,
    service_stderr,
    start_service,
    stop_service,
    wait_for,
)

FEED = "wss://ws-feed.exchange.coinbase.com"  # the producer's `source` header
RECEIVED_NS = 1_796_000_000_123_456_789  # received_at must be its µs, cut
COLUMNS = (
    "product_id, trade_id, side, price, size, time, sequence, maker_order_id, taker_order_id,"
    " source, received_at, kafka_partition, kafka_offset"
)
Row = tuple[object, ...]
Record = dict[str, object] | bytes


@pytest.fixture
def tape(pipeline: Pipeline) -> Iterator[Pipeline]:
    """The pipeline (on one write path) with a private trades topic, deleted afterwards."""
    with_tape = pipeline.with_trade_tape()
    yield with_tape
    pipeline.services.admin_client().delete_topics([with_tape.trades_topic])


def match(product: str, trade_id: int, kind: str = "match", **fields: object) -> dict[str, object]:
    n = trade_id % 1000
    frame: dict[str, object] = {
        "type": kind,
        "trade_id": trade_id,
        "maker_order_id": f"ac928c66-ca53-498f-9c13-a110027a{n:04d}",
        "taker_order_id": f"132fb6ae-456b-4654-b4e0-d681ac05{n:04d}",
        "side": "buy" if n % 2 else "sell",
        "size": f"0.{n:08d}",
        "price": f"{3000 + n}.{n:02d}",
        "product_id": product,
        "sequence": 50_000_000_000 + trade_id * 7,
        "time": f"2026-12-07T01:02:{n % 60:02d}.{n:06d}789Z",  # ns: cut to µs
    }
    return frame | fields


def rest(trade_id: int, **fields: object) -> dict[str, object]:
    n = trade_id % 1000
    trade: dict[str, object] = {
        "time": f"2026-12-07T01:03:{n % 60:02d}.{n:03d}Z",  # ms, as REST often has it
        "trade_id": trade_id,
        "price": f"{4000 + n}.5",
        "size": f"{n}.000000000000000001",
        "side": "sell" if n % 2 else "buy",
    }
    return trade | fields


def expected_row(record: dict[str, object], product: str, partition: int, offset: int) -> Row:
    ws = "type" in record
    return (
        product,
        record["trade_id"],
        record["side"],
        Decimal(str(record["price"])),
        Decimal(str(record["size"])),
        parse_feed_time(str(record["time"])).replace(tzinfo=None),
        record["sequence"] if ws else None,
        record["maker_order_id"] if ws else None,
        record["taker_order_id"] if ws else None,
        "ws" if ws else "rest",
        datetime(1970, 1, 1) + timedelta(microseconds=RECEIVED_NS // 1000),
        partition,
        offset,
    )


class Tape:
    """Records sent to the trades topic with the producer's (or repair's) headers, and the
    row each trade must become: the first record of a trade id wins."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.offsets = [0] * len(pipeline.products)
        self.expected: dict[tuple[str, int], Row] = {}

    def send(self, source: str, records: Sequence[tuple[int, Record]], rows: bool = True) -> None:
        """Produce `records`; with `rows`, each (dict) record's trade is expected in `trade`."""
        with self.pipeline.producing(self.pipeline.trades_topic, source=source) as send:
            for partition, record in records:
                raw = record if isinstance(record, bytes) else orjson.dumps(record)
                send(partition, RECEIVED_NS, raw)
                product = self.pipeline.products[partition]
                if rows and isinstance(record, dict):
                    key = (product, int(str(record["trade_id"])))
                    row = expected_row(record, product, partition, self.offsets[partition])
                    self.expected.setdefault(key, row)
                self.offsets[partition] += 1

    def stored(self) -> dict[tuple[str, int], Row]:
        rows = self.pipeline.rows(f"SELECT {COLUMNS} FROM `trade`")
        found = {(str(row[0]), int(row[1])): tuple(row) for row in rows}
        assert len(found) == len(rows)
        return found

    def committed(self) -> list[int]:
        return self.pipeline.committed_offsets(self.pipeline.trades_topic)

    def written(self, partitions: list[int] | None = None) -> bool:
        """Every expected row in, and offsets committed up to each partition's end."""
        wanted = range(len(self.offsets)) if partitions is None else partitions
        committed = self.committed()
        ends_reached = all(committed[p] == self.offsets[p] for p in wanted)
        return ends_reached and len(self.stored()) == len(self.expected)


def wait_until(done: Callable[[], bool], consumer: subprocess.Popen[bytes], what: str) -> None:
    try:
        wait_for(done, 45, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{service_stderr(consumer)[-3000:]}") from None


@pytest.mark.timeout(90)
def test_trades_from_the_feed_and_rest_are_stored_once_and_exactly(tape: Pipeline) -> None:
    sent = Tape(tape)
    products = tape.products
    base = [1000 * (p + 1) for p in range(len(products))]
    feed: list[tuple[int, Record]] = []
    for p, product in enumerate(products):
        feed.append((p, match(product, base[p], kind="last_match")))
        feed += [(p, match(product, base[p] + n)) for n in range(1, 21)]
    edge = match(products[1], base[1] + 21, price="99999999999999999999.999999999999999999")
    feed.append((1, edge | {"size": "0.000000000000000001"}))
    sent.send(FEED, feed)
    sent.send(FEED, feed[3:6])  # replayed frames: duplicates
    repaired = [(p, rest(base[p] + n)) for p in range(len(products)) for n in (30, 31, 32)]
    already = [(p, rest(base[p] + n)) for p in range(len(products)) for n in (1, 2)]
    sent.send("rest", repaired + already)  # `already` stays the feed's rows
    sent.send(FEED, [(0, match(products[0], base[0] + 30))])  # REST came first: it stays

    port = free_port()
    consumer = start_service("consumer", tape, CONSUMER_METRICS_PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(sent.written, consumer, "every trade stored and its offset committed")
        health = orjson.loads(http_get(url + "/healthz")[1])
        metrics = http_get(url + "/metrics")[1].decode()
    finally:
        code, err = stop_service(consumer)
    assert code == 0, err
    stored = sent.stored()
    assert stored == sent.expected
    assert stored[(products[1], base[1] + 1)][9] == "ws"
    assert stored[(products[0], base[0] + 30)][6:10] == (None, None, None, "rest")
    assert health["tables"] == ["order", "trade"]
    assert set(health["writers"]) == {*products, *(f"{p}/trade" for p in products)}
    assert health["writers"]["BTC-USD/trade"]["table"] == "trade"
    assert 'consumer_rows_written_total{product="BTC-USD",table="trade"} 25.0' in metrics
    assert 'consumer_duplicates_total{product="BTC-USD",table="trade"} 2.0' in metrics
    assert 'consumer_rows_written_total{product="BTC-USD",table="order"} 0.0' in metrics


BAD: list[tuple[str, str, Record]] = [
    ("bad decimal", "wss", match("BTC-USD", 7, price="1e-5")),
    ("decimal too long", "wss", match("BTC-USD", 8, size="0.0000000000000000001")),
    ("no trade_id", "wss", {k: v for k, v in match("BTC-USD", 9).items() if k != "trade_id"}),
    ("other product", "wss", match("ETH-BTC", 10)),
    ("HTML", "rest", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    ("REST no trade_id", "rest", {k: v for k, v in rest(11).items() if k != "trade_id"}),
    ("REST price a number", "rest", rest(12, price=4000.5)),
    ("empty", "rest", b""),
]


@pytest.mark.timeout(90)
def test_bad_trade_records_become_dead_letters_and_are_committed_past(
    tape: Pipeline,
) -> None:
    sent = Tape(tape)
    for source in ("wss", "rest"):  # BAD lists the feed's first: offsets follow BAD
        records = [(1, record) for _name, kind, record in BAD if kind == source]
        sent.send(FEED if source == "wss" else source, records, rows=False)
    sent.send(FEED, [(1, match("BTC-USD", 20))])
    consumer = start_service("consumer", tape)
    try:
        wait_until(lambda: sent.written([1]), consumer, "the good trade, every offset committed")
    finally:
        code, err = stop_service(consumer)
    assert code == 0, err
    assert sent.stored() == sent.expected
    letters = sorted(
        read_all(tape.services.bootstrap, tape.dlq_topic, 3), key=lambda m: m.offset() or 0
    )
    assert len(letters) == len(BAD)
    for letter, (name, _source, _record) in zip(letters, BAD, strict=True):
        headers = dict(letter.headers() or [])
        assert headers["reason"], name
        assert headers["source_topic"] == tape.trades_topic.encode(), name
    reasons = [str(dict(letter.headers() or [])["reason"]) for letter in letters]
    assert "price" in reasons[0] and "trade_id" in reasons[2] and "ETH-BTC" in reasons[3]
    assert "Invalid JSON" in reasons[4] and "empty record" in reasons[7]


@pytest.mark.timeout(90)
def test_a_trade_table_refusing_inserts_ends_the_consumer_with_nothing_committed(
    tape: Pipeline,
) -> None:
    with tape.services.admin() as connection, connection.cursor() as cursor:
        cursor.execute(f"REVOKE INSERT ON `{tape.database}`.`trade` FROM 'ticker_writer'@'%'")
    sent = Tape(tape)
    sent.send(FEED, [(1, match("BTC-USD", 1))])
    consumer = start_service("consumer", tape)
    consumer.wait(30)  # it stops by itself
    code, err = stop_service(consumer)
    assert code == 1, err
    line = fatal_line(err, 1)
    assert "writer BTC-USD/trade" in line and "INSERT" in line, line
    assert sent.committed()[1] < 0  # the offset never passes what MySQL holds
    assert sent.stored() == {}


@pytest.mark.timeout(90)
def test_backfill_rebuilds_trade_as_well(tape: Pipeline, tmp_path: Path) -> None:
    sent = Tape(tape)
    sent.send(
        FEED,
        [
            (p, match(product, 100 + n))
            for p, product in enumerate(tape.products)
            for n in range(10)
        ],
    )
    sent.send("rest", [(1, rest(200)), (1, rest(100))])  # one new, one the feed had
    summary_path = tmp_path / "summary.json"
    backfill = start_service(
        "consumer", tape, "backfill", "--since", "earliest", "--summary-json", str(summary_path)
    )
    backfill.wait(45)
    code, err = stop_service(backfill)
    assert code == 0, err
    assert sent.stored() == sent.expected
    assert all(offset < 0 for offset in sent.committed()), "backfill committed offsets"
    summary = orjson.loads(summary_path.read_bytes())
    trade = {entry["product"]: entry for entry in summary["products"] if entry["table"] == "trade"}
    assert trade["BTC-USD"]["written"] == 11 and trade["BTC-USD"]["duplicates"] == 1
    assert trade["BTC-USD"]["end"] == 12
    assert summary["total"]["written"] == 31
