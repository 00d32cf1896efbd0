"""`python -m consumer backfill`: re-read the topic from a time up to its end as of now.

Start offsets come from `offsets_for_times`; each partition is read up to its end offset
taken at start (or the offset of `--until`), written idempotently by the same writer code
as the live consumer, under a group of its own that never commits: live offsets stay put.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, TopicPartition

from consumer.service import stop_on_signals, supervise
from consumer.writer import PartitionWriter
from shared.kafka_clients import pinned_consumer
from shared.logs import get_logger
from shared.settings import ConsumerSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class Range:
    product: str
    partition: int
    start: int
    end: int


def parse_time(text: str) -> datetime:
    """ISO-8601; a time without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"not an ISO-8601 time: {text!r}") from None
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
    settings: ConsumerSettings, group_id: str, since: datetime | None, until: datetime | None
) -> list[Range]:
    consumer = pinned_consumer(settings, group_id)
    try:
        ranges = []
        for partition, product in enumerate(settings.products):
            topic = settings.kafka_topic
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=30
            )
            end = int(high)
            if until is not None:
                end = min(end, offset_at(consumer, topic, partition, until))
            start = offset_at(consumer, topic, partition, since)
            ranges.append(Range(product, partition, start, end))
        return ranges
    finally:
        consumer.close()


def backfill(settings: ConsumerSettings, since: str, until: str | None) -> int:
    group_id = f"{settings.kafka_group_id}.backfill"
    ranges = plan(
        settings,
        group_id,
        None if since == "earliest" else parse_time(since),
        parse_time(until) if until else None,
    )
    stop = threading.Event()
    stop_on_signals(stop)
    writers = [
        PartitionWriter(
            settings,
            item.product,
            item.partition,
            stop,
            group_id=group_id,
            start_offset=item.start,
            end_offset=item.end,
        )
        for item in ranges
    ]
    for item in ranges:
        log.info("backfill range", product=item.product, start=item.start, end=item.end)
    status = supervise(writers, stop, settings.shutdown_timeout_s)
    print_summary(ranges, writers)
    return status


def print_summary(ranges: list[Range], writers: list[PartitionWriter]) -> None:
    print(
        f"{'product':<12}{'offsets':>22}{'written':>12}{'duplicates':>12}"
        f"{'dead letters':>14}{'snapshots':>11}"
    )
    for item, writer in zip(ranges, writers, strict=True):
        totals = writer.totals
        print(
            f"{item.product:<12}{f'{item.start}..{item.end}':>22}{totals.written:>12}"
            f"{totals.duplicates:>12}{totals.dead_letters:>14}{totals.snapshots:>11}"
        )
    print(
        f"{'total':<12}{'':>22}{sum(w.totals.written for w in writers):>12}"
        f"{sum(w.totals.duplicates for w in writers):>12}"
        f"{sum(w.totals.dead_letters for w in writers):>14}"
        f"{sum(w.totals.snapshots for w in writers):>11}"
    )
