"""Kafka offset commits for one partition: only what MySQL already holds, about once a second.

Offsets are committed at most every `interval_s` (and at shutdown), never past the last
batch the database committed. A crash therefore replays at most the rows of the last
interval (about a second of ticks, or one backlog batch more); the primary key
(product_id, sequence) makes that replay harmless.

Commits are asynchronous, one in flight at a time, so the writer never waits on the broker.
After a broker outage librdkafka can stay "waiting for coordinator" for good: commits then
go unanswered (or a synchronous one blocks for the 45 s session timeout and fails). So a
commit unanswered, or failing, counts as work waiting without progress (`awaiting`), and
shared/supervision.py decides when the Kafka consumer is replaced (consumer/partition_client.py).
The replaced one may still send a commit it held while it closes, and librdkafka may still
retry a commit it reported failed, after newer ones (the broker drill saw a partition's
offset left 170 to 285 behind): until the replaced consumer is closed, and for
`RECOMMIT_S` after either, what is stored is committed again every interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumer import metrics

COMMIT_INTERVAL_S = 1.0
COMMIT_ANSWER_TIMEOUT_S = 10.0  # a healthy broker answers in milliseconds
RECOMMIT_S = 30.0  # after a failed commit or a replaced consumer: commit every interval


class OffsetCommitter:
    """Tracks the next offset stored in MySQL and what the broker has acknowledged."""

    def __init__(
        self,
        topic: str,
        partition: int,
        product: str,
        log: Any,
        interval_s: float = COMMIT_INTERVAL_S,
        on_answer: Callable[[bool], None] = lambda _ok: None,
        table: str = "order",
    ) -> None:
        self._topic, self._partition = topic, partition
        self._log = log
        self._interval_s = interval_s
        self._on_answer = on_answer  # True for an acknowledged commit, False for a failed one
        self._commits = metrics.OFFSET_COMMITS.labels(product=product, table=table)
        self.stored: int | None = None  # next offset after the rows MySQL committed
        self.acknowledged: int | None = None  # what the broker confirmed
        self._in_flight: int | None = None  # sent, not answered yet
        self._sent_at = float("-inf")
        self._failures = 0  # answers in a row that were errors
        self._retiring: set[int] = set()  # ids of replaced consumers not closed yet
        self._recommit_until = float("-inf")

    def rows_stored(self, next_offset: int) -> None:
        """Call after the database commit of every record below `next_offset`."""
        self.stored = next_offset

    @property
    def pending(self) -> bool:
        """Whether to commit: something new is stored, or an older commit may still land
        after ours (a replaced consumer still closing, or librdkafka retrying a commit it
        reported failed), which ours must overwrite."""
        if self.stored is None:
            return False
        if self.stored != self.acknowledged or self._retiring:
            return True
        return time.monotonic() < self._recommit_until

    def seconds_until_due(self, now: float) -> float | None:
        """How long until a commit is due, or its answer is overdue; None when idle."""
        if self._in_flight is not None:
            return max(0.0, self._sent_at + COMMIT_ANSWER_TIMEOUT_S - now)
        if not self.pending:
            return None
        return max(0.0, self._sent_at + self._interval_s - now)

    def commit_if_due(self, consumer: Consumer, now: float | None = None) -> None:
        """Send what is stored if the interval has passed and no commit is in flight."""
        now = time.monotonic() if now is None else now
        due = self.seconds_until_due(now)
        if self._in_flight is not None or due is None or due > 0 or self.stored is None:
            return
        self._sent_at, self._in_flight = now, self.stored
        try:
            consumer.commit(offsets=[self._offset(self.stored)], asynchronous=True)
        except KafkaException as exc:  # e.g. the client refuses at once: next interval
            self._in_flight = None
            self._failed(str(exc))
            return
        self._commits.inc()

    def awaiting(self) -> bool:
        """Whether a commit waits for its answer, or the last ones failed."""
        return self._in_flight is not None or self._failures > 0

    def restart(self) -> None:
        """Forget the commit in flight (its consumer is gone); commit again at once."""
        self._in_flight, self._failures, self._sent_at = None, 0, float("-inf")

    def retiring(self, consumer: Consumer) -> None:
        """`consumer` was replaced and is closing (on another thread): until it is closed,
        what is stored is committed again every interval."""
        self._retiring.add(id(consumer))
        self._recommit_until = time.monotonic() + RECOMMIT_S

    def retired(self, consumer: Consumer) -> None:
        """`consumer` is closed: commit what is stored once more, then as usual."""
        self._retiring.discard(id(consumer))
        self.acknowledged = None

    def commit_now(self, consumer: Consumer) -> None:
        """Synchronous commit of what is stored (shutdown); raises KafkaException on failure."""
        if not self.pending or self.stored is None:
            return
        overdue = time.monotonic() - self._sent_at > COMMIT_ANSWER_TIMEOUT_S
        if self._in_flight is not None and overdue:  # a synchronous one would block, then fail
            raise KafkaException(KafkaError(KafkaError._WAIT_COORD, "commits go unanswered"))
        stored = self.stored
        done = consumer.commit(offsets=[self._offset(stored)], asynchronous=False)
        self._commits.inc()
        for item in done or ():
            if item.error is not None:
                raise KafkaException(item.error)
        self.acknowledged = stored

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's answer to a commit (served by poll/consume in the writer's thread)."""
        for item in partitions:
            if item.partition != self._partition or item.topic != self._topic:
                continue
            if self._in_flight is not None and item.offset != self._in_flight:
                continue  # the answer to an older commit
            self._in_flight = None
            if error or item.error:
                self._failed(str(error or item.error))
            else:
                self._failures = 0
                self.acknowledged = max(self.acknowledged or 0, item.offset)
                self._on_answer(True)

    def _failed(self, error: str) -> None:
        self._failures += 1
        self._recommit_until = time.monotonic() + RECOMMIT_S
        if self._failures == 1:  # the rest of a run of failures shows in `awaiting` and health
            self._log.warning("offset commit failed; retrying", error=error)
        self._on_answer(False)

    def _offset(self, offset: int) -> TopicPartition:
        return TopicPartition(self._topic, self._partition, offset)
