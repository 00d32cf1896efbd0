"""python -m consumer [backfill --since earliest|<ISO time> [--until <ISO time>]]"""

from __future__ import annotations

import argparse
import sys

from confluent_kafka import KafkaException

from consumer import backfill, service
from consumer.preflight import PreflightError, check_table
from shared.logs import configure_logging
from shared.settings import ConsumerSettings, load
from shared.topics import TopicError, ensure_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumer", description=service.__doc__)
    commands = parser.add_subparsers(dest="command")
    replay = commands.add_parser("backfill", help="re-read the topic into `order`")
    replay.add_argument("--since", required=True, help="earliest, or an ISO-8601 time")
    replay.add_argument("--until", help="ISO-8601 time (default: the end as of start)")
    args = parser.parse_args(argv)

    settings = load(ConsumerSettings)
    configure_logging(settings.log_format, settings.log_level)
    try:
        ensure_all(settings)
        check_table(settings)
    except (PreflightError, TopicError, KafkaException) as exc:
        print(f"consumer cannot start: {exc}", file=sys.stderr)
        return 2
    if args.command == "backfill":
        return backfill.backfill(settings, args.since, args.until)
    return service.run(settings)


if __name__ == "__main__":
    sys.exit(main())
