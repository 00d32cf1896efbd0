"""Kafka client configuration built from settings (connection, TLS, SASL)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from shared.logs import get_logger
from shared.settings import CommonSettings

# Header names carried by every raw record and every dead letter.
HEADER_RECEIVED_NS = "received_ns"
HEADER_SOURCE = "source"
HEADER_REASON = "reason"
HEADER_SOURCE_TOPIC = "source_topic"
HEADER_SOURCE_PARTITION = "source_partition"
HEADER_SOURCE_OFFSET = "source_offset"
HEADER_ORIGINAL_LENGTH = "original_length"


class LibrdkafkaLog:
    """librdkafka's own log lines (a broker unreachable, say) as structured lines like the
    service's. Given a logger, confluent-kafka queues them and writes them only while the
    client is polled, so a client still retrying a dead broker cannot write after the line a
    service ends with (librdkafka's default printed to stderr from its threads at any time)."""

    def __init__(self) -> None:
        self._log = get_logger("librdkafka")

    def log(self, level: int, _format: str, facility: str, client: str, message: str) -> None:
        self._log.log(level, message, facility=facility, client=client)


def connection_config(settings: CommonSettings) -> dict[str, Any]:
    """Options every client needs: where the brokers are, how to authenticate, where its
    own log lines go."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol,
        "logger": LibrdkafkaLog(),
    }
    if settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = settings.kafka_ssl_ca_location
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_username:
            config["sasl.username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password:
            config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    return config


def admin_client(settings: CommonSettings) -> AdminClient:
    return AdminClient(connection_config(settings))


def reliable_producer(settings: CommonSettings, **overrides: Any) -> Producer:
    """An idempotent producer: acks from all in-sync replicas, no duplicates on retry."""
    config = connection_config(settings) | {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    return Producer(config | overrides)


def pinned_consumer(settings: CommonSettings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer for `assign()` use: no auto commit, no offset store; the caller commits."""
    config = connection_config(settings) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        # Bound the prefetch so a paused writer doesn't buffer without limit, and fetch
        # again soon after the writer drained it: the default waits a second, which held a
        # backfill to about 15,000 records a second per partition.
        "queued.max.messages.kbytes": 4096,
        "queued.min.messages": 5000,
        "fetch.queue.backoff.ms": 10,
        "fetch.max.bytes": 8 * 1024 * 1024,
        "isolation.level": "read_committed",
    }
    return Consumer(config | overrides)
