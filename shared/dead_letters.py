"""Dead letters: a record that can't become a row goes to the DLQ topic with why and whence.

The value is the original bytes, unchanged up to DEAD_LETTER_KEEP_BYTES and cut there
(a frame Kafka refused as too large would be refused again, and the head is enough to
see what it was); headers carry the reason, the stage that rejected it, the original
length, and (from the consumer) the source topic, partition and offset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

from confluent_kafka import KafkaError, Message, Producer

from shared.kafka_clients import (
    HEADER_ORIGINAL_LENGTH,
    HEADER_REASON,
    HEADER_SOURCE,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
)
from shared.supervision import ClientWatch, Verdict, move_waiting

MAX_REASON_CHARS = 500
DEAD_LETTER_KEEP_BYTES = 64 * 1024  # well under Kafka's default 1 MiB record limit
FLUSH_STEP_S = 1.0  # how often a waiting flush asks the supervision about its client
UNASSIGNED = -1  # librdkafka picks the partition from the key
PURGED = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)
Headers = list[tuple[str, str | bytes | None]]


class DeadLetterError(Exception):
    """The dead-letter topic did not acknowledge a record: the source must not be committed."""


class DeadLetterPublisher:
    """Sends dead letters with an idempotent producer; failures are raised by `flush` and,
    with `on_result`, reported as each delivery is (the producer never flushes mid-run)."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        stage: str,
        on_result: Callable[[KafkaError | None], None] | None = None,
        watch: ClientWatch | None = None,
        make_producer: Callable[[], Producer] | None = None,
    ) -> None:
        self._producer = producer
        # With both, `flush` has its own client supervised (shared/supervision.py); the
        # producer service's dead letters share the publisher's client, supervised there.
        self._watch = watch
        self._make_producer = make_producer
        self._topic = topic
        self._stage = stage
        self._on_result = on_result
        self._failed = 0  # since the last flush
        self._examples: list[str] = []  # the first few of those, for the error
        self.moving = False  # purge reports now mean "send again through the new client"

    def publish(
        self,
        value: bytes | None,
        reason: str,
        key: bytes | None = None,
        partition: int | None = None,
        source_topic: str | None = None,
        source_offset: int | None = None,
    ) -> None:
        headers: Headers = [
            (HEADER_REASON, reason[:MAX_REASON_CHARS]),
            (HEADER_SOURCE, self._stage),
            (HEADER_ORIGINAL_LENGTH, str(len(value or b""))),
        ]
        if source_topic is not None:
            headers.append((HEADER_SOURCE_TOPIC, source_topic))
        if partition is not None:
            headers.append((HEADER_SOURCE_PARTITION, str(partition)))
        if source_offset is not None:
            headers.append((HEADER_SOURCE_OFFSET, str(source_offset)))
        self._producer.produce(
            self._topic,
            value=value[:DEAD_LETTER_KEEP_BYTES] if value else value,
            key=key,
            headers=headers,
            on_delivery=partial(self._delivered, headers),  # reports carry no headers
            partition=UNASSIGNED,  # by key: any partition count works for the DLQ
        )

    def use(self, producer: Producer) -> None:
        """Send through `producer` from now on (the producer replaced a stalled one)."""
        self._producer = producer

    def flush(self, timeout_s: float) -> None:
        """Wait until every dead letter is acknowledged, or raise DeadLetterError (TopicGone
        when the dead-letter topic was deleted)."""
        deadline = time.monotonic() + timeout_s
        remaining = self._producer.flush(min(timeout_s, FLUSH_STEP_S))
        while remaining and time.monotonic() < deadline:
            self._supervise()
            remaining = self._producer.flush(min(FLUSH_STEP_S, deadline - time.monotonic()))
        if not remaining and self._watch is not None:
            self._watch.progressed()
        failed, examples = self._failed, self._examples
        self._failed, self._examples = 0, []
        if remaining or failed:
            raise DeadLetterError(
                f"{remaining} dead letters unacknowledged, {failed} failed: {examples}"
            )

    def _supervise(self) -> None:
        if self._watch is None or self._make_producer is None:
            return
        if self._watch.check(waiting=True) is Verdict.REPLACE:
            old, self._producer = self._producer, self._make_producer()
            self.moving = True
            try:
                move_waiting(old)  # each purged dead letter is sent again through the new one
            finally:
                self.moving = False
            threading.Thread(target=old.close, name="retired-dlq", daemon=True).start()

    def _delivered(self, headers: Headers, error: KafkaError | None, message: Message) -> None:
        if self._on_result is not None:
            self._on_result(error)
        if error is not None and error.code() in PURGED and self.moving:
            self._producer.produce(  # moved off a stalled producer
                self._topic,
                value=message.value(),
                key=message.key(),
                headers=headers,
                on_delivery=partial(self._delivered, headers),
                partition=UNASSIGNED,
            )
        elif error is not None:
            self._failed += 1
            if len(self._examples) < 3:
                self._examples.append(str(error))
