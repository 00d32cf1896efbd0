"""One writer thread: a product's partition -> its rows in `order`.

Each loop: poll (a long wait while idle, which returns at the first record; then a short
one while the batch fills) -> decode -> dead letters acknowledged -> `sink.write` (one
transaction) -> Kafka offsets committed about once a second, and only up
to what the database holds (consumer/offsets.py). A crash replays at most about a
second of rows, which the primary key absorbs.
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
from tenacity import Retrying, retry_if_exception, wait_exponential_jitter

from consumer import metrics
from consumer.decode import Batch, decode_batch
from consumer.offsets import OffsetCommitter
from consumer.settings import ConsumerSettings
from consumer.sink import OrderSink, SinkError, WriteResult
from shared.dead_letters import DeadLetterError, DeadLetterPublisher
from shared.logs import get_logger

HEALTHY_LOOP_AGE_S = 60.0
IDLE_POLL_S = 1.0  # nothing arrived: wait this long (a record ends the wait at once)
DRAIN_S = 0.001  # after a quiet spell: take what came with the first record, no more
QUIET_CHECK_S = 15.0  # no record for this long: check the client still reaches the partition
WATERMARK_TIMEOUT_S = 5.0

# Builds the writer's Kafka consumer; `on_commit` must be wired to librdkafka's callback.
ConsumerFactory = Callable[[str, Callable[[KafkaError | None, list[TopicPartition]], None]], Any]


@dataclass
class WriterStatus:
    """What a writer is doing now; read by /healthz."""

    state: str = "starting"
    lag: int | None = None
    next_offset: int | None = None
    last_loop: float = field(default_factory=time.monotonic)


@dataclass
class WriterCounts:
    """What a writer has done; read by the backfill summary and tests."""

    written: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    snapshots: int = 0


class PartitionWriter(threading.Thread):
    """Writes one product's partition through `sink`; `error` holds what killed it, if anything."""

    def __init__(
        self,
        settings: ConsumerSettings,
        product: str,
        partition: int,
        stop: threading.Event,
        sink: OrderSink,
        make_consumer: ConsumerFactory,
        dead_letters: Callable[[], DeadLetterPublisher],
        group_id: str | None = None,
        start_offset: int = OFFSET_STORED,
        end_offset: int | None = None,
        cluster_answers: Callable[[], bool] = lambda: True,
    ) -> None:
        super().__init__(name=f"writer-{product}", daemon=True)
        self.settings = settings
        self.product = product
        self.partition = partition
        self.group_id = group_id or settings.kafka_group_id
        self.start_offset = start_offset
        self.end_offset = end_offset  # backfill: stop here and commit nothing to Kafka
        self.stop = stop
        self.sink = sink
        self.status = WriterStatus()
        self.counts = WriterCounts()
        self.error: BaseException | None = None
        self.log = get_logger(__name__, product=product, partition=partition)
        self.offsets = OffsetCommitter(settings.kafka_topic, partition, product, self.log)
        self._make_consumer = make_consumer
        self._make_dead_letters = dead_letters
        self.metrics = metrics.ProductMetrics(product)
        self._topic_partition = TopicPartition(settings.kafka_topic, partition)
        self._next_batch_at = 0.0  # monotonic time before which the next batch keeps filling
        self._cluster_answers = cluster_answers  # a fresh client reaches the cluster
        self.quiet_check_s = QUIET_CHECK_S
        self._quiet_since = time.monotonic()

    @property
    def live(self) -> bool:
        return self.end_offset is None

    # ------------------------------------------------------------------ thread body

    def run(self) -> None:
        consumer = self._make_consumer(self.group_id, self.offsets.on_commit)
        dead_letters = self._make_dead_letters()
        try:
            start = self.start_offset
            if start == OFFSET_STORED:
                start = self.retry("kafka_committed", lambda: self.committed_offset(consumer))
            consumer.assign([self.topic_partition(start)])
            self.log.info("writer started", start_offset=start, end=self.end_offset)
            while not self.stop.is_set() and not self.reached_end():
                self.status.state = "polling"
                self.status.last_loop = time.monotonic()
                messages = self.poll_batch(consumer)
                if messages:
                    self._quiet_since = time.monotonic()
                    self.write_batch(consumer, dead_letters, messages)
                if self.live:
                    self.commit_offsets(consumer)
                    if self.offsets.stuck(time.monotonic()):
                        consumer = self.replace_consumer(consumer, start, "commits go unanswered")
                    elif self.wedged(consumer, time.monotonic()):
                        consumer = self.replace_consumer(consumer, start, "it stopped fetching")
                self.update_lag(consumer)
            self.commit_at_exit(consumer)
        except BaseException as exc:
            if not self.stop.is_set():
                self.error = exc
                self.log.error("writer died", error=repr(exc))
                self.commit_at_exit(consumer)  # what MySQL holds is safe to commit
                raise
            self.log.info("writer stopped mid-batch; the batch will be replayed", error=repr(exc))
            self.commit_at_exit(consumer)
        finally:
            self.status.state = "stopped"
            consumer.close()
            self.sink.close()
        self.log.info("writer stopped", written=self.counts.written)

    def wedged(self, consumer: Consumer, now: float) -> bool:
        """After QUIET_CHECK_S without a record: whether this client no longer reaches the
        partition's broker while a fresh one reaches the cluster. librdkafka 2.16 can lose
        every broker for good after a broker's controlled shutdown; a writer with nothing
        to commit would otherwise wait silently, forever."""
        if now - self._quiet_since < self.quiet_check_s:
            return False
        self._quiet_since = now  # the next look is another QUIET_CHECK_S away
        try:
            consumer.get_watermark_offsets(
                self.topic_partition(), timeout=WATERMARK_TIMEOUT_S, cached=False
            )
        except KafkaException:
            return self._cluster_answers()
        return False

    def replace_consumer(self, old: Consumer, start: int, why: str) -> Consumer:
        """A new Kafka consumer from the next offset to write, because the old one is stuck:
        librdkafka can keep waiting for the group coordinator for good after a broker outage
        (consumer/offsets.py), or lose every broker (`wedged`). Nothing is lost: MySQL holds
        every row below the next offset, and the key absorbs what the new consumer reads
        again."""
        self.log.warning("replacing the Kafka consumer", why=why)
        metrics.RETRIES.labels(product=self.product, operation="kafka_consumer").inc()
        # Closed aside: a close waiting on the stuck coordinator must not stall writing.
        self.offsets.retiring(old)
        threading.Thread(
            target=self.retire, args=(old,), name=f"close-{self.product}", daemon=True
        ).start()
        consumer: Consumer = self._make_consumer(self.group_id, self.offsets.on_commit)
        next_offset = self.status.next_offset
        consumer.assign([self.topic_partition(start if next_offset is None else next_offset)])
        self.offsets.restart()
        return consumer

    def retire(self, old: Consumer) -> None:
        try:
            old.close()
        finally:
            self.offsets.retired(old)  # see OffsetCommitter.pending

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
        next_offset = self.status.next_offset
        if self.end_offset is None:
            return False
        if next_offset is None:
            return self.start_offset >= self.end_offset
        return next_offset >= self.end_offset

    def commit_offsets(self, consumer: Consumer) -> None:
        """About once a second, of what MySQL holds, asynchronously (consumer/offsets.py)."""
        self.offsets.commit_if_due(consumer)

    def commit_at_exit(self, consumer: Consumer) -> None:
        if not self.live or not self.offsets.pending:
            return
        try:
            self.offsets.commit_now(consumer)
        except KafkaException as exc:
            self.log.warning("final offset commit failed; rows will be replayed", error=str(exc))

    # ------------------------------------------------------------------ one batch

    def poll_batch(self, consumer: Consumer) -> list[Message]:
        """Records in offset order: wait long for the first, then fill until the batch is due.

        Batches close at most every BATCH_MAX_WAIT_MS: the first record after a quiet spell
        is written at once, while a steady flow gathers for the rest of the window. So the
        writer's wake-ups and transactions follow the window, not the rate, and a slow
        feed pays no latency for it.
        """
        wait = IDLE_POLL_S
        due = self.offsets.seconds_until_due(time.monotonic()) if self.live else None
        if due is not None:
            wait = min(wait, max(due, 0.001))
        first = consumer.poll(wait)
        if first is None:
            return []
        messages = [first]
        if self.settings.batch_max_rows > 1:
            fill = max(DRAIN_S, self._next_batch_at - time.monotonic())
            messages += consumer.consume(
                num_messages=self.settings.batch_max_rows - 1, timeout=fill
            )
        self._next_batch_at = time.monotonic() + self.settings.batch_max_wait_ms / 1000
        return self.usable(messages)

    def usable(self, messages: list[Message]) -> list[Message]:
        """Drop error events (logged) and, in a backfill, records past the end offset."""
        kept = []
        for message in messages:
            if message.error() is not None:
                self.log.warning("consume error", error=str(message.error()))
                continue
            if self.end_offset is not None and message.offset() >= self.end_offset:  # type: ignore[operator]
                break  # backfill: later records belong to the live consumer
            kept.append(message)
        return kept

    def write_batch(
        self, consumer: Consumer, dead_letters: DeadLetterPublisher, messages: list[Message]
    ) -> None:
        batch = decode_batch(messages, self.product, self.partition, keep_received=self.live)
        if batch.last_offset < 0:
            return
        if batch.rejected:
            self.retry("dead_letters", lambda: self.publish_dead_letters(dead_letters, batch))
        result = WriteResult(0, 0)
        if batch.rows:
            started = time.perf_counter()
            result = self.retry("mysql", lambda: self.sink.write(batch.rows), pause=consumer)
            self.metrics.write_seconds.observe(time.perf_counter() - started)
        next_offset = batch.last_offset + 1
        if self.live:
            self.offsets.rows_stored(next_offset)
        self.record_progress(batch, result, next_offset)

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

    def record_progress(self, batch: Batch, result: WriteResult, next_offset: int) -> None:
        counts = self.counts
        counts.written += result.inserted
        counts.duplicates += result.duplicates
        counts.dead_letters += len(batch.rejected)
        counts.snapshots += batch.snapshots
        self.status.next_offset = next_offset
        series = self.metrics
        series.rows_written.inc(result.inserted)
        series.duplicates.inc(result.duplicates)
        series.dead_letters.inc(len(batch.rejected))
        series.snapshots.inc(batch.snapshots)
        series.batch_rows.observe(len(batch.rows))
        series.last_commit.set_to_current_time()
        if batch.received_ns:
            latency = series.end_to_end
            now_ns = time.time_ns()
            for received in batch.received_ns:
                latency.observe(max(0, now_ns - received) / 1e9)

    def update_lag(self, consumer: Consumer) -> None:
        if self.status.next_offset is None:
            return
        _low, high = consumer.get_watermark_offsets(self.topic_partition(), cached=True)
        if high >= 0:
            self.status.lag = max(0, high - self.status.next_offset)
            self.metrics.lag.set(self.status.lag)

    # ------------------------------------------------------------------ retries

    def retry(
        self, operation: str, attempt: Callable[[], Any], pause: Consumer | None = None
    ) -> Any:
        """Run `attempt`, retrying transient failures with capped, jittered backoff.

        With `pause`, the partition is paused while retrying so no records pile up. Waiting
        ends early on shutdown: the batch is then left uncommitted and is replayed later.
        """
        try:
            return attempt()  # the common case, without building the retry machinery
        except BaseException as exc:
            if self.stop.is_set() or not is_transient(exc):
                raise
            self.note_retry(operation, exc, pause)
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential_jitter(multiplier=0.1, max=10),
            stop=lambda _state: self.stop.is_set(),
            sleep=self.sleep,
            before_sleep=lambda state: self.note_retry(
                operation, state.outcome.exception() if state.outcome else None, pause
            ),
            reraise=True,
        )
        try:
            result = retrying(attempt)
        finally:
            if pause is not None:
                pause.resume([self.topic_partition()])
        self.log.info("recovered", operation=operation)
        self.status.state = "polling"
        return result

    def sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)  # wakes at once on shutdown

    def note_retry(
        self, operation: str, error: BaseException | None, pause: Consumer | None
    ) -> None:
        if self.status.state != "retrying" and pause is not None:
            pause.pause([self.topic_partition()])
        self.status.state = "retrying"
        self.status.last_loop = time.monotonic()
        metrics.RETRIES.labels(product=self.product, operation=operation).inc()
        self.log.warning(
            "transient failure, retrying",
            operation=operation,
            error=repr(error),
        )

    def topic_partition(self, offset: int | None = None) -> TopicPartition:
        if offset is None:
            return self._topic_partition
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
    if isinstance(error, SinkError):
        return error.retriable
    if isinstance(error, KafkaException):
        kafka_error = error.args[0] if error.args else None
        if not isinstance(kafka_error, KafkaError):
            return True
        return not kafka_error.fatal() and kafka_error.code() not in PERMANENT_KAFKA_ERRORS
    return isinstance(error, DeadLetterError)
