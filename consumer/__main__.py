"""python -m consumer [backfill --since earliest|<ISO time> [--until <ISO time>]]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from confluent_kafka import KafkaException

from consumer import backfill, service
from consumer.preflight import PreflightError, choose_write_path
from consumer.settings import ConsumerSettings
from shared.failures import EXIT_CODES_HELP, CannotStart, run_command
from shared.logs import configure_logging
from shared.settings import describe, load
from shared.topics import TopicError, ensure_all


def parser() -> argparse.ArgumentParser:
    epilog = f"{describe(ConsumerSettings)}\n\n{EXIT_CODES_HELP}"
    formatter = argparse.RawDescriptionHelpFormatter
    top = argparse.ArgumentParser(
        prog="python -m consumer",
        description=service.__doc__,
        epilog=epilog,
        formatter_class=formatter,
    )
    commands = top.add_subparsers(dest="command")
    replay = commands.add_parser(
        "backfill",
        help="re-read the topics into `order` (and `trade` with the tape on)",
        description=backfill.__doc__,
        epilog=epilog,
        formatter_class=formatter,
    )
    replay.add_argument("--since", required=True, help="earliest, or an ISO-8601 time")
    replay.add_argument("--until", help="ISO-8601 time (default: the end as of start)")
    replay.add_argument(
        "--summary-json", type=Path, metavar="PATH", help="also write the summary to PATH as JSON"
    )
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = "consumer backfill" if args.command == "backfill" else "consumer"
    return run_command(command, lambda: start(args))


def start(args: argparse.Namespace) -> int:
    settings = load(ConsumerSettings)
    configure_logging(settings.log_format, settings.log_level)
    try:
        ensure_all(settings)
        path = choose_write_path(settings)
    except (PreflightError, TopicError, KafkaException) as exc:
        raise CannotStart(f"consumer cannot start: {exc}") from None
    if args.command == "backfill":
        return backfill.backfill(settings, path, args.since, args.until, args.summary_json)
    return service.run(settings, path)


if __name__ == "__main__":
    sys.exit(main())
