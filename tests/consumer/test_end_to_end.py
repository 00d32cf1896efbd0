"""The consumer against a real broker and MariaDB: exact rows, dead letters, offsets, shutdown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest

from ops.http import http_get
from shared.dead_letters import DEAD_LETTER_KEEP_BYTES
from shared.models import DECIMAL_FIELDS, parse_feed_time
from tests.conftest import Pipeline
from tests.factories import (
    as_decimal,
    committed,
    free_port,
    patched,
    produce,
    read_all,
    row_count,
    snapshot,
    start_service,
    stop_service,
    ticker,
    wait_for,
)

TICKS = 400


def frames_per_product(pipeline: Pipeline) -> dict[str, list[bytes]]:
    return {
        product: [ticker(product, 10**11 + partition * 10**9 + n * 3) for n in range(TICKS)]
        for partition, product in enumerate(pipeline.products)
    }


@pytest.mark.timeout(90)
def test_rows_equal_frames_field_by_field(pipeline: Pipeline) -> None:
    frames = frames_per_product(pipeline)
    produce(pipeline, [(p, snapshot(pipeline.products[p])) for p in range(3)])
    produce(
        pipeline,
        [(p, frame) for p, product in enumerate(pipeline.products) for frame in frames[product]],
    )
    consumer = start_service("consumer", pipeline)
    wait_for(lambda: row_count(pipeline) == 3 * TICKS, 60, "all rows")
    code, err = stop_service(consumer)
    assert code == 0, err

    columns = ("product_id", "sequence", "trade_id", "side", "time", *DECIMAL_FIELDS)
    stored = {
        (row[0], row[1]): dict(zip(columns, row, strict=True))
        for row in pipeline.rows(f"SELECT {', '.join(columns)} FROM `order`")
    }
    assert len(stored) == 3 * TICKS
    for product, product_frames in frames.items():
        for raw in product_frames:
            frame = orjson.loads(raw)
            row = stored[(product, frame["sequence"])]
            assert row["trade_id"] == frame["trade_id"]
            assert row["side"] == frame["side"]
            assert row["time"] == parse_feed_time(frame["time"]).replace(tzinfo=None)
            for name in DECIMAL_FIELDS:
                assert row[name] == as_decimal(frame[name]), name
    assert committed(pipeline) == [TICKS + 1] * 3


@pytest.mark.timeout(90)
def test_each_thread_writes_only_its_product(pipeline: Pipeline) -> None:
    frames = frames_per_product(pipeline)
    produce(
        pipeline,
        [(p, frame) for p, product in enumerate(pipeline.products) for frame in frames[product]],
    )
    consumer = start_service("consumer", pipeline)
    wait_for(lambda: row_count(pipeline) == 3 * TICKS, 60, "all rows")
    stop_service(consumer)
    placement = pipeline.rows(
        "SELECT product_id, kafka_partition, COUNT(*) FROM `order` "
        "GROUP BY product_id, kafka_partition ORDER BY kafka_partition"
    )
    assert placement == [
        (product, partition, TICKS) for partition, product in enumerate(pipeline.products)
    ]


BAD_FRAMES: list[tuple[str, bytes]] = [
    ("not json", b"{not json"),
    ("empty", b""),
    ("json array", b"[1,2,3]"),
    ("sql in product", ticker("BTC-USD", 1, product_id="BTC-USD'); DROP TABLE `order`; --")),
    ("sql in price", ticker("BTC-USD", 2, price="1); DELETE FROM `order`; --")),
    ("NaN price", ticker("BTC-USD", 3, price="NaN")),
    ("numeric price", ticker("BTC-USD", 4, price=84140.83)),
    ("huge price", ticker("BTC-USD", 5, price="1" * 25)),
    ("negative size", ticker("BTC-USD", 6, last_size="-0.5")),
    ("19 decimals", ticker("BTC-USD", 7, price="0.1234567890123456789")),
    ("exponent", ticker("BTC-USD", 8, price="1e5")),
    ("non-UTC time", ticker("BTC-USD", 9, time="2026-09-29T15:45:58.116787+02:00")),
    ("malformed time", ticker("BTC-USD", 10, time="yesterday")),
    ("impossible date", ticker("BTC-USD", 11, time="2026-02-30T00:00:00Z")),
    ("sequence as string", patched(ticker("BTC-USD", 12), sequence="12")),
    ("negative sequence", patched(ticker("BTC-USD", 13), sequence=-13)),
    ("sequence over 2^63", patched(ticker("BTC-USD", 14), sequence=2**64)),
    ("bad side", ticker("BTC-USD", 15, side="hold")),
    ("missing price", ticker("BTC-USD", 16, price=None)),
    ("wrong product", ticker("BTC-EUR", 17)),
    # Cut to its first DEAD_LETTER_KEEP_BYTES in the dead letter, with its original length.
    ("1 MB price", ticker("BTC-USD", 18, price="9" * 990_000)),
]


@pytest.mark.timeout(90)
def test_bad_frames_go_to_dead_letters_and_good_rows_land(pipeline: Pipeline) -> None:
    good = [ticker("BTC-USD", 1000 + n) for n in range(49)]
    good.append(ticker("BTC-USD", 1049, padding="x" * 990_000))  # valid, however large: a row
    records = [(1, value) for _name, value in BAD_FRAMES] + [(1, value) for value in good]
    produce(pipeline, records)
    consumer = start_service("consumer", pipeline)
    wait_for(lambda: row_count(pipeline) == len(good), 60, "good rows")
    wait_for(lambda: committed(pipeline)[1] == len(records), 30, "offsets committed")
    code, err = stop_service(consumer)
    assert code == 0, err

    dead = read_all(pipeline.services.bootstrap, pipeline.dlq_topic, 3)
    assert len(dead) == len(BAD_FRAMES)
    by_offset = {int(dict(m.headers() or [])["source_offset"] or b"-1"): m for m in dead}
    for offset, (name, value) in enumerate(BAD_FRAMES):
        letter = by_offset[offset]
        headers = dict(letter.headers() or [])
        assert (letter.value() or b"") == value[:DEAD_LETTER_KEEP_BYTES], name
        assert headers["original_length"] == str(len(value)).encode(), name
        assert headers["reason"], name
        assert headers["source_partition"] == b"1"
        assert headers["source_topic"] == pipeline.topic.encode()
    assert row_count(pipeline) == len(good)
    sequences = [row[0] for row in pipeline.rows("SELECT sequence FROM `order` ORDER BY 1")]
    assert sequences == list(range(1000, 1050))
    assert isinstance(pipeline.rows("SELECT MAX(time) FROM `order`")[0][0], datetime)


def writers(url: str) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(http_get(url + "/healthz")[1])["writers"]
    return found


@pytest.mark.timeout(90)
def test_health_reports_each_writer_and_metrics_count_rows(pipeline: Pipeline) -> None:
    produce(pipeline, [(1, ticker("BTC-USD", 500 + n)) for n in range(30)])
    port = free_port()
    consumer = start_service("consumer", pipeline, CONSUMER_METRICS_PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: row_count(pipeline) == 30, 60, "rows")
        wait_for(lambda: http_get(url + "/healthz")[0] == 200, 15, "healthy consumer")
        # The lag shows once a fetch answer has carried the partition's end (a loop later).
        wait_for(lambda: writers(url)["BTC-USD"]["lag"] == 0, 15, "BTC-USD's lag known")
        health = orjson.loads(http_get(url + "/healthz")[1])
        assert set(health["writers"]) == set(pipeline.products)
        assert all(writer["alive"] for writer in health["writers"].values())
        assert health["writers"]["BTC-USD"]["lag"] == 0
        metrics = http_get(url + "/metrics")[1].decode()
        assert 'consumer_rows_written_total{product="BTC-USD",table="order"} 30.0' in metrics
        assert "consumer_end_to_end_seconds_bucket" in metrics
    finally:
        code, err = stop_service(consumer)
    assert code == 0, err
