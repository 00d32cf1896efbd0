"""`python -m consumer backfill`: re-read the topics from a time up to their end as of now.

Rebuilds `order` from KAFKA_TOPIC and, with the trade tape on, `trade` from
KAFKA_TRADES_TOPIC (the same time range, by each record's Kafka timestamp).

Start offsets come from `offsets_for_times`; each owned partition is read up to its end
offset taken at start (or the offset of `--until`), written idempotently by the same
writer code as the live consumer, under a group of its own that never commits: live
offsets stay put. A summary goes to stdout, and with `--summary-json` to a file.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition

from consumer.service import new_writer, stop_on_signals, supervise
from consumer.settings import ConsumerSettings
from consumer.sink import WritePath
from consumer.streams import Stream, streams
from consumer.writer import PartitionWriter
from shared.failures import CannotStart, ExitCode, Fatal
from shared.kafka_clients import pinned_consumer
from shared.logs import get_logger
from shared.partitions import PartitionMap

log = get_logger(__name__)


@dataclass(frozen=True)
class Range:
    product: str
    partition: int
    start: int
    end: int
    table: str = "order"


def parse_time(text: str) -> datetime:
    """ISO-8601; a time without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CannotStart(f"not an ISO-8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def offset_at(consumer: Consumer, topic: str, partition: int, moment: datetime | None) -> int:
    """First offset at or after `moment` (None = earliest); the end offset if none is."""
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
    if moment is None:
        return int(low)
    wanted = TopicPartition(topic, partition, int(moment.timestamp() * 1000))
    found = consumer.offsets_for_times([wanted], timeout=30)[0]
    return int(high) if found.offset < 0 else int(found.offset)


def plan(
    settings: ConsumerSettings,
    group_id: str,
    since: datetime | None,
    until: datetime | None,
    stream: Stream,
) -> list[Range]:
    partitions = PartitionMap(settings.products)
    consumer = pinned_consumer(settings, group_id)
    topic = stream.topic_of(settings)
    try:
        ranges = []
        for product in settings.owned_products:
            partition = partitions.partition(product)
            assert partition is not None
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=30
            )
            end = int(high)
            if until is not None:
                end = min(end, offset_at(consumer, topic, partition, until))
            start = offset_at(consumer, topic, partition, since)
            ranges.append(Range(product, partition, start, end, stream.name))
        return ranges
    finally:
        consumer.close()


def backfill(
    settings: ConsumerSettings,
    path: WritePath,
    since: str,
    until: str | None,
    summary_json: Path | None = None,
) -> int:
    group_id = f"{settings.kafka_group_id}.backfill"
    started = time.monotonic()
    begin = None if since == "earliest" else parse_time(since)
    finish = parse_time(until) if until else None
    stop = threading.Event()
    stop_on_signals(stop)
    ranges: list[Range] = []
    writers: list[PartitionWriter] = []
    for stream in streams(settings):
        for item in plan(settings, group_id, begin, finish, stream):
            ranges.append(item)
            writers.append(
                new_writer(
                    settings,
                    item.product,
                    stop,
                    path,
                    stream,
                    group_id=group_id,
                    start_offset=item.start,
                    end_offset=item.end,
                )
            )
    for item in ranges:
        log.info(
            "backfill range", product=item.product, table=item.table, start=item.start, end=item.end
        )
    failure: Fatal | None = None
    try:
        supervise(writers, stop, settings.shutdown_timeout_s)
    except Fatal as exc:
        failure = exc
    status = ExitCode.OK if failure is None else failure.code
    print_summary(ranges, writers)
    if summary_json is not None:
        summary = summarise(ranges, writers, path, time.monotonic() - started, status)
        summary_json.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if failure is not None:
        raise failure
    return status


def summarise(
    ranges: list[Range],
    writers: list[PartitionWriter],
    path: WritePath,
    seconds: float,
    status: int,
) -> dict[str, object]:
    """The machine-readable summary (`--summary-json`): per product and in total."""
    products = [
        {**asdict(item), **asdict(writer.counts)}
        for item, writer in zip(ranges, writers, strict=True)
    ]
    total = {
        name: sum(int(str(entry[name])) for entry in products)
        for name in ("written", "duplicates", "dead_letters", "snapshots")
    }
    return {
        "exit_code": status,
        "seconds": round(seconds, 3),
        "write_path": path.chosen,
        "products": products,
        "total": total,
    }


def print_summary(ranges: list[Range], writers: list[PartitionWriter]) -> None:
    print(
        f"{'writer':<16}{'offsets':>22}{'written':>12}{'duplicates':>12}"
        f"{'dead letters':>14}{'snapshots':>11}"
    )
    for item, writer in zip(ranges, writers, strict=True):
        counts = writer.counts
        print(
            f"{writer.label:<16}{f'{item.start}..{item.end}':>22}{counts.written:>12}"
            f"{counts.duplicates:>12}{counts.dead_letters:>14}{counts.snapshots:>11}"
        )
    print(
        f"{'total':<16}{'':>22}{sum(w.counts.written for w in writers):>12}"
        f"{sum(w.counts.duplicates for w in writers):>12}"
        f"{sum(w.counts.dead_letters for w in writers):>14}"
        f"{sum(w.counts.snapshots for w in writers):>11}"
    )
