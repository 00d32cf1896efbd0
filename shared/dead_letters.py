"""Dead letters: a record that can't become a row goes to the DLQ topic with why and whence.

The value is the original bytes, unchanged; headers carry the reason, the stage that
rejected it, and (from the consumer) the source topic, partition and offset.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from confluent_kafka import KafkaError, Message, Producer

from shared.kafka_clients import (
    HEADER_REASON,
    HEADER_SOURCE,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
)

MAX_REASON_CHARS = 500
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
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._stage = stage
        self._on_result = on_result
        self._failed = 0  # since the last flush
        self._examples: list[str] = []  # the first few of those, for the error
        self.resend_purged = True  # a purge moves dead letters off a wedged client, unless closing

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
        ]
        if source_topic is not None:
            headers.append((HEADER_SOURCE_TOPIC, source_topic))
        if partition is not None:
            headers.append((HEADER_SOURCE_PARTITION, str(partition)))
        if source_offset is not None:
            headers.append((HEADER_SOURCE_OFFSET, str(source_offset)))
        self._producer.produce(
            self._topic,
            value=value,
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
        failed, examples = self._failed, self._examples
        self._failed, self._examples = 0, []
        if remaining or failed:
            raise DeadLetterError(
                f"{remaining} dead letters unacknowledged, {failed} failed: {examples}"
            )

    def _delivered(self, headers: Headers, error: KafkaError | None, message: Message) -> None:
        if self._on_result is not None:
            self._on_result(error)
        if error is not None and error.code() in PURGED and self.resend_purged:
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
