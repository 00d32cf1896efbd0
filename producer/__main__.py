"""python -m producer: Coinbase ticker feed (and the trade tape) -> Kafka, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import sys

from confluent_kafka import KafkaException

from producer.service import run
from producer.settings import ProducerSettings
from shared.failures import EXIT_CODES_HELP, CannotStart, run_command
from shared.logs import configure_logging
from shared.settings import describe, load
from shared.topics import TopicError, ensure_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m producer",
        description="Reads the Coinbase ticker feed on FEED_CONNECTIONS redundant WebSocket "
        "sessions and publishes every tick, raw, to its product's Kafka partition; with "
        "KAFKA_TRADES_TOPIC set, every match frame too (the trade tape), once per trade id.",
        epilog=f"{describe(ProducerSettings)}\n\n{EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    return run_command("producer", start)


def start() -> int:
    settings = load(ProducerSettings)
    configure_logging(settings.log_format, settings.log_level)
    try:
        ensure_all(settings)
    except (TopicError, KafkaException) as exc:
        raise CannotStart(f"producer cannot start: {exc}") from None
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
