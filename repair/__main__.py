"""python -m repair: fill the holes of the trade tape from Coinbase's REST trade history."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from confluent_kafka import KafkaException

from repair.service import follow, run_once
from repair.settings import RepairSettings
from shared.failures import EXIT_CODES_HELP, CannotStart, run_command
from shared.kafka_clients import admin_client
from shared.logs import configure_logging
from shared.settings import describe, load

DESCRIPTION = """\
Finds the holes in each product's trade ids in table `trade`, fetches exactly the missing
trades from COINBASE_REST_URL (/products/{id}/trades, at most REPAIR_REST_RATE requests/s,
429 and 5xx retried with backoff) and publishes each one unchanged to KAFKA_TRADES_TOPIC
with header source=rest; the consumer stores them.

One-shot (default): the holes between the first stored trade (at or after --since) and the
last, then waits up to REPAIR_WAIT_S for `trade` to show them closed; prints a JSON summary
(holes, trades fetched, requests, 429s) and exits 0.
--follow: every REPAIR_POLL_S, the holes up to the exchange's newest trade too, until
SIGTERM; /healthz and /metrics on REPAIR_METRICS_PORT."""


def _time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m repair",
        description=DESCRIPTION,
        epilog=f"{describe(RepairSettings)}\n\n{EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--product", action="append", default=[], help="only this product (repeatable)"
    )
    parser.add_argument("--since", type=_time, help="ISO time: only trades from then on")
    parser.add_argument("--follow", action="store_true", help="keep repairing until SIGTERM")
    args = parser.parse_args(argv)
    return run_command("repair", lambda: start(args.product, args.since, args.follow))


def start(wanted: list[str], since: datetime | None, keep_following: bool) -> int:
    settings = load(RepairSettings)
    configure_logging(settings.log_format, settings.log_level)
    unknown = sorted(set(wanted) - set(settings.products))
    if unknown:
        raise CannotStart(f"--product {', '.join(unknown)} is not in PRODUCTS")
    products = tuple(p for p in settings.products if not wanted or p in wanted)
    check_topic(settings)
    if keep_following:
        return follow(settings, products, since)
    return run_once(settings, products, since)


def check_topic(settings: RepairSettings) -> None:
    """The trades topic exists with a partition per product (exit 2 otherwise)."""
    topic = settings.kafka_trades_topic
    if not topic:
        raise CannotStart("KAFKA_TRADES_TOPIC is empty: the trade tape is off, nothing to repair")
    try:
        found = admin_client(settings).list_topics(topic, timeout=10).topics.get(topic)
    except KafkaException as exc:
        raise CannotStart(f"repair cannot start: Kafka did not answer: {exc}") from None
    if found is None or found.error is not None or len(found.partitions) < len(settings.products):
        raise CannotStart(
            f"repair cannot start: topic {topic} is missing or has fewer partitions than "
            "PRODUCTS (python -m shared.topics ensure creates it)"
        )


if __name__ == "__main__":
    sys.exit(main())
