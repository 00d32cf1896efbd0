"""Dead letters: a record that can't become a row goes to the DLQ topic with why and whence.

The value is the original bytes, unchanged up to DEAD_LETTER_KEEP_BYTES and cut there
(a frame Kafka refused as too large would be refused again, and the head is enough to
see what it was); headers carry the reason, the stage that rejected it, the original
length, and (from the consumer) the source topic, partition and offset.
"""

from __future__ import annotations

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

MAX_REASON_CHARS = 500
DEAD_LETTER_KEEP_BYTES = 64 * 1024  # well under Kafka's default 1 MiB record limit
UNASSIGNED = -1  # librdkafka picks the partition from the key
PURGED = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)
Headers = list[tuple[str, str | bytes | None]]


class DeadLetterError(Exception):
    """The dead-letter topic did not acknowledge a record: the source must not be committed."""


class DeadLetterPublisher:
    """Sends dead letters with an idempotent producer and reports failures on `flush`."""

    def __init__(self, producer: Producer, topic: str, stage: str) -> None:
        self._producer = producer
        self._topic = topic
        self._stage = stage
        self._failures: list[str] = []

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
        """Wait until every dead letter is acknowledged, or raise DeadLetterError."""
        remaining = self._producer.flush(timeout_s)
        failures, self._failures = self._failures, []
        if remaining or failures:
            raise DeadLetterError(
                f"{remaining} dead letters unacknowledged, {len(failures)} failed: {failures[:3]}"
            )

    def _delivered(self, headers: Headers, error: KafkaError | None, message: Message) -> None:
        if error is not None and error.code() in PURGED:  # moved off a stalled producer
            self._producer.produce(
                self._topic,
                value=message.value(),
                key=message.key(),
                headers=headers,
                on_delivery=partial(self._delivered, headers),
                partition=UNASSIGNED,
            )
        elif error is not None:
            self._failures.append(str(error))
