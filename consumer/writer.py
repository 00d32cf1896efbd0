"""One writer thread: a product's partition of one topic -> its rows in one table.

The writer is generic: what it reads and writes is a `decode` function (a topic's records ->
rows and dead letters) and a `sink` (rows -> a table). `order` from KAFKA_TOPIC is
consumer/decode.py + the ORDER layout; `trade` from KAFKA_TRADES_TOPIC is
consumer/decode_trade.py + the TRADE layout (consumer/streams.py pairs them).

One loop: poll (a long wait while idle, which returns at the first record; then a short
one while the batch fills) -> decode -> dead letters acknowledged -> `sink.write` (one
transaction) -> offsets committed about once a second, only up to what the database holds
-> the Kafka side supervised (consumer/partition_client.py). A crash replays at most about
a second of rows, which the primary key absorbs. A failure that retrying cannot fix ends
the thread with `error` set (consumer/failures.py); the service reports it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_STORED, Message
from tenacity import Retrying, retry_if_exception, wait_exponential_jitter

from consumer import metrics
from consumer.decode import Batch, Decoder, decode_batch
from consumer.failures import as_fatal, is_transient
from consumer.partition_client import ConsumerFactory, PartitionClient
from consumer.settings import ConsumerSettings
from consumer.sink import Sink, SinkError, WriteResult
from shared.dead_letters import DeadLetterPublisher
from shared.failures import Fatal
from shared.logs import get_logger
from shared.supervision import Probe

HEALTHY_LOOP_AGE_S = 60.0
IDLE_POLL_S = 1.0  # nothing arrived: wait this long (a record ends the wait at once)
DRAIN_S = 0.001  # after a quiet spell: take what came with the first record, no more


@dataclass
class WriterStatus:
    """What a writer is doing now; read by /healthz."""

    state: str = "starting"
    lag: int | None = None
    next_offset: int | None = None
    last_loop: float = field(default_factory=time.monotonic)
    advanced_at: float = field(default_factory=time.monotonic)  # a batch written, or no lag


@dataclass
class WriterCounts:
    """What a writer has done; read by the backfill summary and tests."""

    written: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    snapshots: int = 0


class PartitionWriter(threading.Thread):
    """Writes one product's partition through `sink`; `error` holds what ended it, if anything."""

    def __init__(
        self,
        settings: ConsumerSettings,
        product: str,
        partition: int,
        stop: threading.Event,
        sink: Sink,
        make_consumer: ConsumerFactory,
        dead_letters: Callable[[], DeadLetterPublisher],
        probe: Probe,
        group_id: str | None = None,
        start_offset: int = OFFSET_STORED,
        end_offset: int | None = None,
        topic: str | None = None,
        decode: Decoder = decode_batch,
        table: str = "order",
    ) -> None:
        label = product if table == "order" else f"{product}/{table}"
        super().__init__(name=f"writer-{label}", daemon=True)
        self.settings = settings
        self.product = product
        self.table = table
        self.label = label  # names the writer in /healthz and the summaries
        self.topic = topic or settings.kafka_topic
        self.decode = decode
        self.partition = partition
        self.group_id = group_id or settings.kafka_group_id
        self.start_offset = start_offset
        self.end_offset = end_offset  # backfill: stop here and commit nothing to Kafka
        self.stop = stop
        self.sink = sink
        self.status = WriterStatus()
        self.counts = WriterCounts()
        self.error: Fatal | None = None
        self.client: PartitionClient | None = None
        self.log = get_logger(__name__, product=product, table=table, partition=partition)
        self._make_consumer = make_consumer
        self._make_dead_letters = dead_letters
        self._probe = probe
        self.metrics = metrics.ProductMetrics(product, table)
        self._next_batch_at = 0.0  # monotonic time before which the next batch keeps filling

    @property
    def live(self) -> bool:
        return self.end_offset is None

    # ------------------------------------------------------------------ thread body

    def run(self) -> None:
        try:
            self.client = client = PartitionClient(
                self.topic,
                self.partition,
                self.product,
                self.group_id,
                self._make_consumer,
                self._probe,
                self.log,
                live=self.live,
                table=self.table,
            )
            dead_letters = self._make_dead_letters()
            start = self.start_offset
            if start == OFFSET_STORED:
                start = self.retry("kafka_committed", client.committed_offset)
            client.assign(start)
            self.log.info("writer started", start_offset=start, end=self.end_offset)
            while not self.stop.is_set() and not self.reached_end():
                self.status.state = "polling"
                self.status.last_loop = time.monotonic()
                messages = self.poll_batch(client)
                if messages:
                    self.write_batch(client, dead_letters, messages)
                client.commit_if_due()
                client.supervise(self.status.next_offset)
                self.update_lag(client)
        except BaseException as exc:
            self.ended_by(exc)
        finally:
            self.status.state = "stopped"
            if self.client is not None:
                self.client.close()  # commits what MySQL holds: that much is safe
            self.sink.close()
        if self.error is None:
            self.log.info("writer stopped", written=self.counts.written)

    def ended_by(self, exc: BaseException) -> None:
        if self.stop.is_set() and is_transient(exc):
            self.log.info("writer stopped mid-batch; the batch will be replayed", error=str(exc))
            return
        self.error = as_fatal(exc, self.label, self.settings.mysql_user)
        if isinstance(exc, Fatal | SinkError) or not isinstance(exc, Exception):
            self.log.error("writer failed", error=str(self.error))
        else:  # not anticipated: its traceback, once, for whoever fixes it
            self.log.exception("writer failed", error=str(self.error))

    def reached_end(self) -> bool:
        next_offset = self.status.next_offset
        if self.end_offset is None:
            return False
        if next_offset is None:
            return self.start_offset >= self.end_offset
        return next_offset >= self.end_offset

    def stalled_for(self, now: float) -> float:
        """Seconds without progress while records wait or errors repeat (0 otherwise)."""
        client_stalled = self.client.stalled_for() if self.client is not None else 0.0
        waiting = bool(self.status.lag) or self.status.state == "retrying"
        return max(now - self.status.advanced_at if waiting else 0.0, client_stalled)

    # ------------------------------------------------------------------ one batch

    def poll_batch(self, client: PartitionClient) -> list[Message]:
        """Records in offset order: wait long for the first, then fill until the batch is due.

        Batches close at most every BATCH_MAX_WAIT_MS: the first record after a quiet spell
        is written at once, while a steady flow gathers for the rest of the window. So the
        writer's wake-ups and transactions follow the window, not the rate, and a slow
        feed pays no latency for it.
        """
        wait = IDLE_POLL_S
        due = client.offsets.seconds_until_due(time.monotonic()) if self.live else None
        if due is not None:
            wait = min(wait, max(due, 0.001))
        fill = max(DRAIN_S, self._next_batch_at - time.monotonic())
        messages = client.poll(wait, fill, self.settings.batch_max_rows)
        if not messages:
            return []
        self._next_batch_at = time.monotonic() + self.settings.batch_max_wait_ms / 1000
        if self.end_offset is not None:  # backfill: later records belong to the live consumer
            messages = [m for m in messages if m.offset() < self.end_offset]  # type: ignore[operator]
        return messages

    def write_batch(
        self, client: PartitionClient, dead_letters: DeadLetterPublisher, messages: list[Message]
    ) -> None:
        batch = self.decode(messages, self.product, self.partition, self.live)
        if batch.last_offset < 0:
            return
        if batch.rejected:
            self.retry("dead_letters", lambda: self.publish_dead_letters(dead_letters, batch))
        result = WriteResult(0, 0)
        if batch.rows:
            started = time.perf_counter()
            result = self.retry("mysql", lambda: self.sink.write(batch.rows), pause=client)
            self.metrics.write_seconds.observe(time.perf_counter() - started)
        next_offset = batch.last_offset + 1
        if self.live:
            client.offsets.rows_stored(next_offset)
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
        offsets = [message.offset() for message, _reason in batch.rejected]
        self.log.warning(  # one line a batch; each record's reason is in its headers
            "dead letters",
            count=len(offsets),
            first_offset=offsets[0],
            last_offset=offsets[-1],
            reasons=sorted({reason for _message, reason in batch.rejected})[:3],
        )

    def record_progress(self, batch: Batch, result: WriteResult, next_offset: int) -> None:
        counts = self.counts
        counts.written += result.inserted
        counts.duplicates += result.duplicates
        counts.dead_letters += len(batch.rejected)
        counts.snapshots += batch.snapshots
        self.status.next_offset = next_offset
        self.status.advanced_at = time.monotonic()
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

    def update_lag(self, client: PartitionClient) -> None:
        next_offset = self.status.next_offset
        if next_offset is None:
            return
        lag = client.lag(next_offset)
        if lag is not None:
            self.status.lag = lag
            self.metrics.lag.set(lag)
        if not lag:
            self.status.advanced_at = time.monotonic()  # nothing waits: idle is healthy

    # ------------------------------------------------------------------ retries

    def retry(
        self, operation: str, attempt: Callable[[], Any], pause: PartitionClient | None = None
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
                pause.resume()
        self.log.info("recovered", operation=operation)
        self.status.state = "polling"
        return result

    def sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)  # wakes at once on shutdown

    def note_retry(
        self, operation: str, error: BaseException | None, pause: PartitionClient | None
    ) -> None:
        first = self.status.state != "retrying"
        if first and pause is not None:
            pause.pause()
        self.status.state = "retrying"
        self.status.last_loop = time.monotonic()
        metrics.RETRIES.labels(product=self.product, table=self.table, operation=operation).inc()
        if first:  # later attempts show in consumer_retries_total and /healthz
            self.log.warning("transient failure, retrying", operation=operation, error=repr(error))
