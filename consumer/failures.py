"""The consumer's side of the error taxonomy: what a writer retries, and what stops it.

Transient: the database or broker away or busy (SinkUnavailable, a Kafka error that retrying
may cure), a dead letter not yet acknowledged. Everything else is permanent and becomes a
`Fatal` naming the writer, the error and, for MySQL, the account.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from consumer.sink import SinkError
from shared.dead_letters import DeadLetterError
from shared.failures import Fatal
from shared.supervision import kafka_failure


def is_transient(error: BaseException) -> bool:
    if isinstance(error, SinkError):
        return error.retriable
    if isinstance(error, KafkaException):
        kafka_error = error.args[0] if error.args else None
        if not isinstance(kafka_error, KafkaError):
            return True
        return kafka_failure(kafka_error, "consumer") is None
    return isinstance(error, DeadLetterError)


def as_fatal(error: BaseException, product: str, mysql_user: str) -> Fatal:
    """The one line a writer's end is reported with."""
    if isinstance(error, Fatal):
        return error
    if isinstance(error, SinkError):
        return Fatal(f"writer {product}: MySQL refused the write as {mysql_user}: {error}")
    if isinstance(error, KafkaException):
        return Fatal(f"writer {product}: Kafka failed for good: {error.args[0]}")
    return Fatal(f"writer {product} failed: {error!r}")
