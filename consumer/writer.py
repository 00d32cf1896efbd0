"""One writer thread: a product's partition -> its rows in `order`.

Each loop: poll a batch (closes on size or time) -> decode -> dead letters acknowledged ->
rows written in one transaction -> Kafka offset committed. The offset is committed only
after the database commit, and the insert is idempotent, so a crash anywhere replays
at most one batch and never duplicates a row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_STORED,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from pymysql.connections import Connection
from pymysql.cursors import Cursor
from tenacity import Retrying, retry_if_exception, wait_exponential_jitter

from consumer import metrics
from consumer.decode import Rejected, Row, Snapshot, decode, received_ns
from consumer.sink import WriteResult, write_batch
from shared import mysql
from shared.dead_letters import DeadLetterError, DeadLetterPublisher
from shared.kafka_clients import pinned_consumer, reliable_producer
from shared.logs import get_logger
from shared.settings import ConsumerSettings

HEALTHY_LOOP_AGE_S = 60.0


@dataclass
class Batch:
    rows: list[Row] = field(default_factory=list)
    rejected: list[tuple[Message, str]] = field(default_factory=list)
    snapshots: int = 0
    last_offset: int = -1
    received_ns: list[int] = field(default_factory=list)  # live only: for the latency metric


@dataclass
class WriterTotals:
    """What one writer did; read by health, the backfill summary and tests."""

    written: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    snapshots: int = 0
    next_offset: int | None = None
    lag: int | None = None
    state: str = "starting"
    last_loop: float = field(default_factory=time.monotonic)


class PartitionWriter(threading.Thread):
    """Writes one product's partition; `error` holds what killed it, if anything."""

    def __init__(
        self,
        settings: ConsumerSettings,
        product: str,
        partition: int,
        stop: threading.Event,
        group_id: str | None = None,
        start_offset: int = OFFSET_STORED,
        end_offset: int | None = None,
    ) -> None:
        super().__init__(name=f"writer-{product}", daemon=True)
        self.settings = settings
        self.product = product
        self.partition = partition
        self.group_id = group_id or settings.kafka_group_id
        self.start_offset = start_offset
        self.end_offset = end_offset  # backfill: stop here and commit nothing to Kafka
        self.stop = stop
        self.totals = WriterTotals()
        self.error: BaseException | None = None
        self.log = get_logger(__name__, product=product, partition=partition)
        self._labels = {"product": product}
        self._connection: Connection[Cursor] | None = None

    # ------------------------------------------------------------------ thread body

    def run(self) -> None:
        consumer = pinned_consumer(self.settings, self.group_id)
        dead_letters = DeadLetterPublisher(
            reliable_producer(self.settings), self.settings.kafka_dlq_topic, stage="consumer"
        )
        try:
            start = self.start_offset
            if start == OFFSET_STORED:
                start = self.retry("kafka_committed", lambda: self.committed_offset(consumer))
            consumer.assign([self.topic_partition(start)])
            self.log.info("writer started", start_offset=start, end=self.end_offset)
            while not self.stop.is_set() and not self.reached_end():
                self.totals.state = "polling"
                self.totals.last_loop = time.monotonic()
                messages = consumer.consume(
                    num_messages=self.settings.batch_max_rows,
                    timeout=self.settings.batch_max_wait_ms / 1000,
                )
                if messages:
                    self.handle(consumer, dead_letters, self.decode_all(messages))
                self.update_lag(consumer)
        except BaseException as exc:
            if not self.stop.is_set():
                self.error = exc
                self.log.error("writer died", error=repr(exc))
                raise
            self.log.info("writer stopped mid-batch; the batch will be replayed", error=repr(exc))
        finally:
            self.totals.state = "stopped"
            consumer.close()
            if self._connection is not None:
                self._connection.close()
        self.log.info("writer stopped", written=self.totals.written)

    def committed_offset(self, consumer: Consumer) -> int:
        """The group's committed offset, or the beginning for a new group.

        Asked for explicitly (not `assign` at OFFSET_STORED), because librdkafka gives up
        on that look-up when the group coordinator is still loading, leaving the
        partition unread without an error.
        """
        (found,) = consumer.committed([self.topic_partition()], timeout=10)
        if found.error is not None:
            raise KafkaException(found.error)
        return int(found.offset) if found.offset >= 0 else OFFSET_BEGINNING

    def reached_end(self) -> bool:
        next_offset = self.totals.next_offset
        if self.end_offset is None:
            return False
        if next_offset is None:
            return self.start_offset >= self.end_offset
        return next_offset >= self.end_offset

    # ------------------------------------------------------------------ one batch

    def decode_all(self, messages: list[Message]) -> Batch:
        batch = Batch()
        for message in messages:
            if message.error() is not None:
                self.log.warning("consume error", error=str(message.error()))
                continue
            offset = message.offset()
            assert offset is not None  # set on every record without an error
            if self.end_offset is not None and offset >= self.end_offset:
                break  # backfill: later records belong to the live consumer
            outcome = decode(
                message.value(), message.headers(), self.product, self.partition, offset
            )
            if isinstance(outcome, Rejected):
                batch.rejected.append((message, outcome.reason))
            elif isinstance(outcome, Snapshot):
                batch.snapshots += 1
            else:
                batch.rows.append(outcome)
                if self.end_offset is None:
                    received = received_ns(message.headers())
                    if received is not None:
                        batch.received_ns.append(received)
            batch.last_offset = offset
        return batch

    def handle(self, consumer: Consumer, dead_letters: DeadLetterPublisher, batch: Batch) -> None:
        if batch.last_offset < 0:
            return
        if batch.rejected:
            self.retry("dead_letters", lambda: self.publish_dead_letters(dead_letters, batch))
        result = WriteResult(0, 0)
        if batch.rows:
            started = time.perf_counter()
            result = self.retry("mysql", lambda: self.write(batch.rows), pause=consumer)
            metrics.WRITE_SECONDS.labels(**self._labels).observe(time.perf_counter() - started)
        next_offset = batch.last_offset + 1
        if self.end_offset is None:
            self.retry("kafka_commit", lambda: self.commit(consumer, next_offset))
        self.account(batch, result, next_offset)

    def publish_dead_letters(self, dead_letters: DeadLetterPublisher, batch: Batch) -> None:
        for message, reason in batch.rejected:
            dead_letters.publish(
                message.value(),
                reason,
                key=message.key(),
                partition=self.partition,
                source_topic=message.topic(),
                source_offset=message.offset(),
            )
        dead_letters.flush(timeout_s=30)
        for message, reason in batch.rejected:
            self.log.warning("dead letter", offset=message.offset(), reason=reason)

    def write(self, rows: list[Row]) -> WriteResult:
        if self._connection is None:
            self._connection = mysql.connect(self.settings)
        try:
            return write_batch(self._connection, rows)
        except BaseException:
            # After a failure the connection's state is unknown: start the next try afresh.
            if self._connection.open:
                self._connection.close()
            self._connection = None
            raise

    def commit(self, consumer: Consumer, next_offset: int) -> None:
        committed = consumer.commit(offsets=[self.topic_partition(next_offset)], asynchronous=False)
        for topic_partition in committed or ():
            if topic_partition.error is not None:
                raise KafkaException(topic_partition.error)

    def account(self, batch: Batch, result: WriteResult, next_offset: int) -> None:
        totals = self.totals
        totals.written += result.inserted
        totals.duplicates += result.duplicates
        totals.dead_letters += len(batch.rejected)
        totals.snapshots += batch.snapshots
        totals.next_offset = next_offset
        metrics.ROWS_WRITTEN.labels(**self._labels).inc(result.inserted)
        metrics.DUPLICATES.labels(**self._labels).inc(result.duplicates)
        metrics.DEAD_LETTERS.labels(**self._labels).inc(len(batch.rejected))
        metrics.SNAPSHOTS.labels(**self._labels).inc(batch.snapshots)
        metrics.BATCH_ROWS.labels(**self._labels).observe(len(batch.rows))
        metrics.LAST_COMMIT.labels(**self._labels).set_to_current_time()
        latency = metrics.END_TO_END_SECONDS.labels(**self._labels)
        now_ns = time.time_ns()
        for received in batch.received_ns:
            latency.observe(max(0, now_ns - received) / 1e9)

    def update_lag(self, consumer: Consumer) -> None:
        if self.totals.next_offset is None:
            return
        _low, high = consumer.get_watermark_offsets(self.topic_partition(), cached=True)
        if high >= 0:
            self.totals.lag = max(0, high - self.totals.next_offset)
            metrics.LAG.labels(**self._labels).set(self.totals.lag)

    # ------------------------------------------------------------------ retries

    def retry(
        self, operation: str, attempt: Callable[[], Any], pause: Consumer | None = None
    ) -> Any:
        """Run `attempt`, retrying transient failures with capped, jittered backoff.

        With `pause`, the partition is paused while retrying so no records pile up. Waiting
        ends early on shutdown: the batch is then left uncommitted and is replayed later.
        """
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential_jitter(initial=0.1, max=10),
            stop=lambda _state: self.stop.is_set(),
            sleep=self.sleep,
            before_sleep=lambda state: self.note_retry(operation, state.outcome, pause),
            reraise=True,
        )
        try:
            result = retrying(attempt)
        finally:
            if self.totals.state == "retrying" and pause is not None:
                pause.resume([self.topic_partition()])
        if self.totals.state == "retrying":
            self.log.info("recovered", operation=operation)
        self.totals.state = "polling"
        return result

    def sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)  # wakes at once on shutdown

    def note_retry(self, operation: str, outcome: Any, pause: Consumer | None) -> None:
        if self.totals.state != "retrying" and pause is not None:
            pause.pause([self.topic_partition()])
        self.totals.state = "retrying"
        self.totals.last_loop = time.monotonic()
        metrics.RETRIES.labels(product=self.product, operation=operation).inc()
        self.log.warning(
            "transient failure, retrying",
            operation=operation,
            error=repr(outcome.exception()) if outcome else None,
        )

    def topic_partition(self, offset: int | None = None) -> TopicPartition:
        if offset is None:
            return TopicPartition(self.settings.kafka_topic, self.partition)
        return TopicPartition(self.settings.kafka_topic, self.partition, offset)


# Kafka errors that retrying won't cure: credentials and permissions.
PERMANENT_KAFKA_ERRORS = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._AUTHENTICATION,
    }
)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, KafkaException):
        kafka_error = error.args[0] if error.args else None
        if not isinstance(kafka_error, KafkaError):
            return True
        return not kafka_error.fatal() and kafka_error.code() not in PERMANENT_KAFKA_ERRORS
    if isinstance(error, DeadLetterError):
        return True
    return mysql.is_transient(error)
