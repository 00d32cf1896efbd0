"""`python -m consumer`: one pinned writer thread per owned product until SIGTERM/SIGINT.

A writer that dies stops the others (after their batch in hand) and the process exits 1:
all owned instruments written, or none, never two of three silently.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from consumer.settings import ConsumerSettings
from consumer.sink import MySQLOrderSink, WritePath
from consumer.writer import HEALTHY_LOOP_AGE_S, PartitionWriter
from shared.dead_letters import DeadLetterPublisher
from shared.kafka_clients import cluster_answers, pinned_consumer, reliable_producer
from shared.logs import get_logger
from shared.observability import serve
from shared.partitions import PartitionMap

log = get_logger(__name__)


def stop_on_signals(stop: threading.Event) -> None:
    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def new_writer(
    settings: ConsumerSettings,
    product: str,
    stop: threading.Event,
    path: WritePath,
    **options: Any,
) -> PartitionWriter:
    """A writer for `product` on its PRODUCTS-order partition, with real Kafka and MySQL."""
    partition = PartitionMap(settings.products).partition(product)
    assert partition is not None  # settings checked CONSUMER_PRODUCTS against PRODUCTS
    return PartitionWriter(
        settings,
        product,
        partition,
        stop,
        sink=MySQLOrderSink(settings, path),
        make_consumer=lambda group, on_commit: pinned_consumer(
            settings, group, on_commit=on_commit
        ),
        dead_letters=lambda: DeadLetterPublisher(
            reliable_producer(settings), settings.kafka_dlq_topic, stage="consumer"
        ),
        cluster_answers=lambda: cluster_answers(settings, settings.kafka_topic),
        **options,
    )


def health(
    writers: Sequence[PartitionWriter], path: WritePath | None = None
) -> tuple[bool, dict[str, Any]]:
    now = time.monotonic()
    details = {
        writer.product: {
            "alive": writer.is_alive(),
            "partition": writer.partition,
            "state": writer.status.state,
            "lag": writer.status.lag,
            "seconds_since_loop": round(now - writer.status.last_loop, 3),
            "next_offset": writer.status.next_offset,
        }
        for writer in writers
    }
    healthy = all(
        writer.is_alive() and now - writer.status.last_loop < HEALTHY_LOOP_AGE_S
        for writer in writers
    )
    extra = {"write_path": path.chosen} if path is not None else {}
    return healthy, {"products": [w.product for w in writers], **extra, "writers": details}


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


def run(settings: ConsumerSettings, path: WritePath) -> int:
    stop = threading.Event()
    stop_on_signals(stop)
    writers = [new_writer(settings, product, stop, path) for product in settings.owned_products]
    serve(
        settings.consumer_metrics_port,
        lambda: health(writers, path),
        setting="CONSUMER_METRICS_PORT",
    )
    log.info(
        "consumer starting",
        products=settings.owned_products,
        group=settings.kafka_group_id,
        write_path=path.chosen,
    )
    return supervise(writers, stop, settings.shutdown_timeout_s)
