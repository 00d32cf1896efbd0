"""`python -m shared.topics ensure`: create the raw and dead-letter topics if missing.

The raw topic gets one partition per configured product. An existing raw topic with fewer
partitions than products is refused: products would share or miss partitions. The
dead-letter topic is created the same way but may have any partition count (dead letters
are keyed, not pinned). The producer and the consumer run the same check at start-up.
"""

from __future__ import annotations

import argparse
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from shared.failures import EXIT_CODES_HELP, CannotStart, run_command
from shared.kafka_clients import admin_client
from shared.logs import configure_logging, get_logger
from shared.settings import CommonSettings, load

log = get_logger(__name__)


class TopicError(Exception):
    """The topic exists in a shape the pipeline can't use."""


def ensure_topic(
    admin: AdminClient,
    name: str,
    partitions: int,
    retention_ms: int,
    replication_factor: int = -1,
    timeout_s: float = 30.0,
    required_partitions: int | None = None,
) -> bool:
    """Create `name` with `partitions` partitions unless it exists; True if created.

    An existing topic must have at least `required_partitions` (default: `partitions`).
    """
    required = partitions if required_partitions is None else required_partitions
    existing = admin.list_topics(timeout=timeout_s).topics.get(name)
    if existing is not None and existing.error is None:
        if len(existing.partitions) < required:
            raise TopicError(
                f"topic {name} has {len(existing.partitions)} partitions but {partitions} "
                "products are configured; add partitions first (see README: adding an instrument)"
            )
        return False
    topic = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=replication_factor,
        config={"retention.ms": str(retention_ms), "cleanup.policy": "delete"},
    )
    future = admin.create_topics([topic], operation_timeout=timeout_s)[name]
    try:
        future.result(timeout=timeout_s)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a concurrent ensure won the race
            raise
        return False
    return True


def ensure_all(settings: CommonSettings) -> None:
    """The topics exist (raw ticks, dead letters, and the trade tape unless it is off), the
    raw and trades topics with a partition per product; raises TopicError."""
    admin = admin_client(settings)
    required = {settings.kafka_topic: len(settings.products), settings.kafka_dlq_topic: 1}
    if settings.kafka_trades_topic:  # the trade tape: partitioned like the ticks
        required[settings.kafka_trades_topic] = len(settings.products)
    for name, minimum in required.items():
        created = ensure_topic(
            admin,
            name,
            partitions=len(settings.products),
            retention_ms=settings.kafka_retention_ms,
            replication_factor=settings.kafka_replication_factor,
            required_partitions=minimum,
        )
        if created:
            log.info("topic created", topic=name, partitions=len(settings.products))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.topics",
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["ensure"])
    parser.parse_args(argv)
    return run_command("topics", ensure)


def ensure() -> int:
    """The topics ready (exit 0), or one line saying why not (CannotStart, exit 2)."""
    settings = load(CommonSettings)
    configure_logging(settings.log_format, settings.log_level)
    try:
        ensure_all(settings)
    except (TopicError, KafkaException) as exc:
        raise CannotStart(f"refusing: {exc}") from None
    log.info("topics ready", topics=[settings.kafka_topic, settings.kafka_dlq_topic])
    return 0


if __name__ == "__main__":
    sys.exit(main())
