"""python -m producer: Coinbase ticker feed -> Kafka, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import sys

from confluent_kafka import KafkaException

from producer.service import run
from shared.logs import configure_logging
from shared.settings import ProducerSettings, load
from shared.topics import TopicError, ensure_all


def main() -> int:
    settings = load(ProducerSettings)
    configure_logging(settings.log_format, settings.log_level)
    try:
        ensure_all(settings)
    except (TopicError, KafkaException) as exc:
        print(f"producer cannot start: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
