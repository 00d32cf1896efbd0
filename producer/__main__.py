"""python -m producer: Coinbase ticker feed -> Kafka, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import sys

from producer.service import run
from shared.logs import configure_logging
from shared.settings import ProducerSettings, load


def main() -> int:
    settings = load(ProducerSettings)
    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
