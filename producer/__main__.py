"""python -m producer: Coinbase ticker feed -> Kafka, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import sys

from confluent_kafka import KafkaException

from producer.service import run
from producer.settings import ProducerSettings
from shared.logs import configure_logging
from shared.settings import describe, load
from shared.topics import TopicError, ensure_all

EXIT_CODES = """exit codes:
  0  stopped by SIGTERM/SIGINT after flushing to Kafka
  1  invalid setting (one line names the variable)
  2  cannot start: topic unusable, Kafka unreachable, metrics port in use
  3  stopped, but Kafka had not acknowledged every tick within FLUSH_TIMEOUT_S (the
     count is logged as an error: those ticks are lost)"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m producer",
        description="Reads the Coinbase ticker feed on FEED_CONNECTIONS redundant WebSocket "
        "sessions and publishes every tick, raw, to its product's Kafka partition.",
        epilog=f"{describe(ProducerSettings)}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
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
