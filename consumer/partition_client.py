"""One writer's Kafka side: its pinned consumer, offset commits, and supervision.

The consumer reads one partition (`assign`, no group rebalancing). Offsets are committed
only up to what MySQL holds (consumer/offsets.py). Every few calls `supervise` hands the
client's progress to shared/supervision.py, which decides: wait (an outage), replace the
consumer (wedged, librdkafka#5301, or stuck on its group coordinator), or fail (the topic
is gone). Error events from librdkafka are judged by the same taxonomy: permanent ones
fail the writer, the rest are counted and logged one line per kind per interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from consumer.offsets import OffsetCommitter
from shared.logs import RepeatedErrors
from shared.supervision import (
    MISSING_KAFKA_ERRORS,
    ClientWatch,
    Probe,
    Verdict,
    kafka_failure,
)

QUIET_CHECK_S = 5.0  # no record for this long: ask the broker for the partition's end
WATERMARK_TIMEOUT_S = 5.0

# Builds a Kafka consumer; `on_commit` must be wired to librdkafka's commit callback.
ConsumerFactory = Callable[[str, Callable[[KafkaError | None, list[TopicPartition]], None]], Any]


class PartitionClient:
    """The Kafka consumer of one writer, replaced when it wedges; offsets committed safely."""

    def __init__(
        self,
        topic: str,
        partition: int,
        product: str,
        group_id: str,
        make_consumer: ConsumerFactory,
        probe: Probe,
        log: Any,
        live: bool,
        table: str = "order",
    ) -> None:
        self.topic_partition = TopicPartition(topic, partition)
        self._group_id = group_id
        self._make_consumer = make_consumer
        self._log = log
        self._live = live  # a backfill commits nothing
        self.offsets = OffsetCommitter(
            topic, partition, product, log, on_answer=self._answered, table=table
        )
        # Fetching and committing are watched apart: records can flow from the partition's
        # leader while commits wait for a group coordinator that never answers.
        self.fetch_watch = ClientWatch("writer", topic, probe)
        self.commit_watch = ClientWatch("writer", topic, probe)
        self._errors = RepeatedErrors(log, "Kafka consume errors")
        self._refused = False  # Kafka said the topic or partition is unknown
        self._quiet_since = time.monotonic()
        self._start = OFFSET_BEGINNING
        self._unreachable = False  # the last look at the partition's end got no answer
        self.quiet_check_s = QUIET_CHECK_S
        self.consumer: Consumer = make_consumer(group_id, self.offsets.on_commit)

    def committed_offset(self) -> int:
        """The group's committed offset, or the beginning for a new group.

        Asked for explicitly (not `assign` at OFFSET_STORED), because librdkafka gives up
        on that look-up when the group coordinator is still loading, leaving the
        partition unread without an error.
        """
        (found,) = self.consumer.committed([self.topic_partition], timeout=10)
        if found.error is not None:
            raise KafkaException(found.error)
        return int(found.offset) if found.offset >= 0 else OFFSET_BEGINNING

    def assign(self, offset: int) -> None:
        self._start = offset  # where a replacement starts while no row is stored yet
        tp = self.topic_partition
        self.consumer.assign([TopicPartition(tp.topic, tp.partition, offset)])

    def poll(self, wait_s: float, fill_s: float | None, max_messages: int) -> list[Message]:
        """Records in offset order: wait up to `wait_s` for the first, then `fill_s` more."""
        first = self.consumer.poll(wait_s)
        if first is None:
            return []
        messages = [first]
        if fill_s is not None and max_messages > 1:
            messages += self.consumer.consume(num_messages=max_messages - 1, timeout=fill_s)
        return self._records(messages)

    def _records(self, messages: list[Message]) -> list[Message]:
        """Error events judged (a permanent one raises), records passed on."""
        kept = []
        for message in messages:
            error = message.error()
            if error is None:
                kept.append(message)
                continue
            failure = kafka_failure(error, "consumer")
            if failure is not None:
                raise failure
            if error.code() in MISSING_KAFKA_ERRORS:
                self._refused = True  # `supervise` asks whether the topic is gone
            self._errors.add(error.name(), error=error.str())
        if kept:
            self._quiet_since = time.monotonic()
            self._refused = False
            self.fetch_watch.progressed()
        return kept

    def pause(self) -> None:
        self.consumer.pause([self.topic_partition])

    def resume(self) -> None:
        self.consumer.resume([self.topic_partition])

    def commit_if_due(self) -> None:
        if self._live:
            self.offsets.commit_if_due(self.consumer)

    def supervise(self, next_offset: int | None) -> None:
        """Look at the partition when quiet; replace a wedged consumer; raise TopicGone."""
        if not self._live:
            return
        now = time.monotonic()
        if now - self._quiet_since >= self.quiet_check_s:
            self._quiet_since = now
            self._look_at_partition()
        fetching = self.fetch_watch.check(self._refused or self._unreachable)
        committing = self.commit_watch.check(self.offsets.awaiting())
        if Verdict.REPLACE in (fetching, committing):
            self._replace(next_offset)

    def _look_at_partition(self) -> None:
        """With nothing fetched, only an answer from the partition's broker shows the client
        still reaches it: otherwise a writer with nothing to commit would wait forever."""
        try:
            self.consumer.get_watermark_offsets(
                self.topic_partition, timeout=WATERMARK_TIMEOUT_S, cached=False
            )
        except KafkaException as exc:
            self._unreachable = True
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() in MISSING_KAFKA_ERRORS:
                self._refused = True
            return
        self._unreachable = False
        self.fetch_watch.progressed()

    def _answered(self, ok: bool) -> None:
        if ok:
            self.commit_watch.progressed()

    def _replace(self, next_offset: int | None) -> None:
        """A new Kafka consumer from the next offset to write. Nothing is lost: MySQL holds
        every row below it, and the key absorbs what the new consumer reads again."""
        self._log.warning("replacing the Kafka consumer", stalled_s=self.fetch_watch.stall_s)
        old = self.consumer
        # Closed aside: a close waiting on a stuck coordinator must not stall writing.
        self.offsets.retiring(old)
        threading.Thread(target=self._retire, args=(old,), name="close-old", daemon=True).start()
        self.consumer = self._make_consumer(self._group_id, self.offsets.on_commit)
        self.assign(self._start if next_offset is None else next_offset)
        self.offsets.restart()
        self._refused = self._unreachable = False
        self.fetch_watch.progressed()  # each watch gives the new consumer a whole stall_s
        self.commit_watch.progressed()

    def _retire(self, old: Consumer) -> None:
        try:
            old.close()
        finally:
            self.offsets.retired(old)  # see OffsetCommitter.pending

    @property
    def refused(self) -> bool:
        """Kafka says the topic or partition is unknown (deleted?): unhealthy at once."""
        return self._refused

    @property
    def replacements(self) -> int:
        return self.fetch_watch.replacements + self.commit_watch.replacements

    def stalled_for(self) -> float:
        """Seconds the client has shown no progress on work that waits."""
        return max(self.fetch_watch.stalled_for(), self.commit_watch.stalled_for())

    def lag(self, next_offset: int) -> int | None:
        _low, high = self.consumer.get_watermark_offsets(self.topic_partition, cached=True)
        return max(0, high - next_offset) if high >= 0 else None

    def close(self) -> None:
        """Commit what MySQL holds (live only), then close the consumer."""
        try:
            if self._live and self.offsets.pending:
                self.offsets.commit_now(self.consumer)
        except KafkaException as exc:
            self._log.warning("final offset commit failed; rows will be replayed", error=str(exc))
        finally:
            self._errors.flush()
            self.consumer.close()
