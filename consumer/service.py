"""`python -m consumer`: one pinned writer thread per product until SIGTERM/SIGINT.

A writer that dies stops the others (after their batch in hand) and the process exits 1:
all instruments written, or none, never two of three silently.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from consumer.writer import HEALTHY_LOOP_AGE_S, PartitionWriter
from shared.logs import get_logger
from shared.observability import serve
from shared.settings import ConsumerSettings

log = get_logger(__name__)


def stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, _frame: object) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def health(writers: Sequence[PartitionWriter]) -> tuple[bool, dict[str, Any]]:
    now = time.monotonic()
    details = {
        writer.product: {
            "alive": writer.is_alive(),
            "state": writer.totals.state,
            "lag": writer.totals.lag,
            "seconds_since_loop": round(now - writer.totals.last_loop, 3),
            "next_offset": writer.totals.next_offset,
        }
        for writer in writers
    }
    healthy = all(
        writer.is_alive() and now - writer.totals.last_loop < HEALTHY_LOOP_AGE_S
        for writer in writers
    )
    return healthy, {"writers": details}


def supervise(writers: Sequence[PartitionWriter], stop: threading.Event, timeout_s: float) -> int:
    """Wait for the writers; 0 when they all ended cleanly, 1 when one died."""
    for writer in writers:
        writer.start()
    while any(writer.is_alive() for writer in writers):
        dead = [writer for writer in writers if writer.error is not None]
        if dead and not stop.is_set():
            log.error(
                "a writer died; stopping the others",
                product=dead[0].product,
                error=repr(dead[0].error),
            )
            stop.set()
        if stop.is_set():
            break
        time.sleep(0.2)
    deadline = time.monotonic() + timeout_s
    for writer in writers:
        writer.join(max(0.0, deadline - time.monotonic()))
    stuck = [writer.product for writer in writers if writer.is_alive()]
    if stuck:
        log.error("writers did not stop in time", products=stuck)
        return 1
    return 1 if any(writer.error is not None for writer in writers) else 0


def run(settings: ConsumerSettings) -> int:
    stop = threading.Event()
    stop_on_signals(stop)
    writers = [
        PartitionWriter(settings, product, partition, stop)
        for partition, product in enumerate(settings.products)
    ]
    serve(settings.consumer_metrics_port, lambda: health(writers), setting="CONSUMER_METRICS_PORT")
    log.info("consumer starting", products=settings.products, group=settings.kafka_group_id)
    return supervise(writers, stop, settings.shutdown_timeout_s)
