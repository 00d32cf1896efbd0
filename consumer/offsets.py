"""Kafka offset commits for one partition: only what MySQL already holds, about once a second.

Offsets are committed at most every `interval_s` (and at shutdown), never past the last
batch the database committed. A crash therefore replays at most the rows of the last
interval (about a second of ticks, or one backlog batch more); the primary key
(product_id, sequence) makes that replay harmless.

The commits are synchronous. Asynchronous ones were silently deferred by librdkafka after a
broker outage, and a synchronous commit issued behind such a deferred one never returned,
leaving a partition's offset behind for good.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumer import metrics

COMMIT_INTERVAL_S = 1.0


class OffsetCommitter:
    """Tracks the next offset stored in MySQL and what the broker has acknowledged."""

    def __init__(
        self,
        topic: str,
        partition: int,
        product: str,
        log: Any,
        interval_s: float = COMMIT_INTERVAL_S,
    ) -> None:
        self._topic, self._partition = topic, partition
        self._log = log
        self._interval_s = interval_s
        self._commits = metrics.OFFSET_COMMITS.labels(product=product)  # the same series
        self.stored: int | None = None  # next offset after the rows MySQL committed
        self.acknowledged: int | None = None  # what the broker confirmed
        self._sent_at = float("-inf")

    def rows_stored(self, next_offset: int) -> None:
        """Call after the database commit of every record below `next_offset`."""
        self.stored = next_offset

    @property
    def pending(self) -> bool:
        return self.stored is not None and self.stored != self.acknowledged

    def seconds_until_due(self, now: float) -> float | None:
        """How long until a commit is due; None when there is nothing to commit."""
        if not self.pending:
            return None
        return max(0.0, self._sent_at + self._interval_s - now)

    def commit_if_due(self, consumer: Consumer, now: float | None = None) -> None:
        """Commit what is stored if the interval has passed; a failure is retried next time."""
        now = time.monotonic() if now is None else now
        due = self.seconds_until_due(now)
        if due is None or due > 0:
            return
        self._sent_at = now
        try:
            self.commit_now(consumer)
        except KafkaException as exc:  # e.g. the broker is away: the next interval retries
            self._log.warning("offset commit failed; retrying", error=str(exc))

    def commit_now(self, consumer: Consumer) -> None:
        """Synchronous commit of what is stored (shutdown); raises KafkaException on failure."""
        if not self.pending or self.stored is None:
            return
        stored = self.stored
        done = consumer.commit(offsets=[self._offset(stored)], asynchronous=False)
        self._commits.inc()
        for item in done or ():
            if item.error is not None:
                raise KafkaException(item.error)
        self.acknowledged = stored

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's report of a commit (served by poll/consume): failures are logged."""
        for item in partitions:
            if item.partition == self._partition and (error or item.error):
                self._log.warning("offset commit failed; retrying", error=str(error or item.error))

    def _offset(self, offset: int) -> TopicPartition:
        return TopicPartition(self._topic, self._partition, offset)
