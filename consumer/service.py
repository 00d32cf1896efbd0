"""`python -m consumer`: one pinned writer thread per owned product and table until SIGTERM/SIGINT.

`order` from KAFKA_TOPIC; `trade` from KAFKA_TRADES_TOPIC too when the trade tape is on
(consumer/streams.py says why each table has writer threads of its own).

A writer that fails for good stops the others (after their batch in hand) and the process
exits with that failure's code and line (shared/failures.py): all owned instruments
written, or none, never two of three silently. The closing summary is logged on every exit.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from consumer import metrics
from consumer.settings import ConsumerSettings
from consumer.sink import MySQLSink, WritePath
from consumer.streams import ORDERS, Stream, streams
from consumer.writer import HEALTHY_LOOP_AGE_S, PartitionWriter
from shared.dead_letters import DeadLetterPublisher
from shared.failures import ExitCode, Fatal
from shared.kafka_clients import pinned_consumer, reliable_producer
from shared.logs import get_logger
from shared.observability import serve
from shared.partitions import PartitionMap
from shared.supervision import ClientWatch, topic_probe

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
    stream: Stream = ORDERS,
    **options: Any,
) -> PartitionWriter:
    """A writer of `stream` for `product` on its PRODUCTS-order partition, with real Kafka
    and MySQL."""
    partition = PartitionMap(settings.products).partition(product)
    assert partition is not None  # settings checked CONSUMER_PRODUCTS against PRODUCTS
    dlq = settings.kafka_dlq_topic
    topic = stream.topic_of(settings)

    def dead_letters() -> DeadLetterPublisher:
        return DeadLetterPublisher(
            reliable_producer(settings),
            dlq,
            stage="consumer",
            watch=ClientWatch("dead_letters", dlq, topic_probe(settings, dlq, 1)),
            make_producer=lambda: reliable_producer(settings),
        )

    return PartitionWriter(
        settings,
        product,
        partition,
        stop,
        sink=MySQLSink(settings, path, stream.table),
        make_consumer=lambda group, on_commit: pinned_consumer(
            settings, group, on_commit=on_commit
        ),
        dead_letters=dead_letters,
        probe=topic_probe(settings, topic, partition + 1),
        topic=topic,
        decode=stream.decode,
        table=stream.name,
        **options,
    )


def health(
    writers: Sequence[PartitionWriter], stall_s: float, path: WritePath | None = None
) -> tuple[bool, dict[str, Any]]:
    now = time.monotonic()
    details = {}
    problems = []
    for writer in writers:
        stalled_s = writer.stalled_for(now)
        loop_age = now - writer.status.last_loop
        problem = writer_problem(writer, stalled_s >= stall_s, loop_age)
        stalled = metrics.WRITER_STALLED.labels(product=writer.product, table=writer.table)
        stalled.set(int(problem is not None))
        if problem is not None:
            problems.append(f"writer {writer.label}: {problem}")
        details[writer.label] = {  # `BTC-USD` for `order`, `BTC-USD/trade` for `trade`
            "table": writer.table,
            "alive": writer.is_alive(),
            "partition": writer.partition,
            "state": writer.status.state,
            "lag": writer.status.lag,
            "seconds_since_loop": round(loop_age, 3),
            "seconds_without_progress": round(stalled_s, 1),
            "next_offset": writer.status.next_offset,
            "problem": problem,
        }
    extra = {"write_path": path.chosen} if path is not None else {}
    return not problems, {
        "reason": "; ".join(problems) or None,
        "products": list(dict.fromkeys(w.product for w in writers)),
        "tables": sorted({w.table for w in writers}),
        **extra,
        "writers": details,
    }


def writer_problem(writer: PartitionWriter, stalled: bool, loop_age: float) -> str | None:
    if writer.error is not None:
        return f"failed: {writer.error}"
    if not writer.is_alive():
        return "stopped"
    if writer.client is not None and writer.client.refused:
        return "Kafka says its topic or partition is unknown"
    if stalled:
        return "no progress while records wait or errors repeat"
    if loop_age >= HEALTHY_LOOP_AGE_S:
        return f"its loop has not turned for {loop_age:.0f} s"
    return None


def supervise(writers: Sequence[PartitionWriter], stop: threading.Event, timeout_s: float) -> int:
    """Run the writers until `stop`, or one fails; 0, or raise the first failure as Fatal."""
    for writer in writers:
        writer.start()
    while any(writer.is_alive() for writer in writers) and not stop.is_set():
        if any(writer.error is not None for writer in writers):
            stop.set()  # the others finish their batch in hand, commit, and stop
            break
        time.sleep(0.1)
    deadline = time.monotonic() + timeout_s
    for writer in writers:
        writer.join(max(0.0, deadline - time.monotonic()))
    log.info(
        "consumer stopped",
        written={w.label: w.counts.written for w in writers},
        duplicates={w.label: w.counts.duplicates for w in writers},
        dead_letters={w.label: w.counts.dead_letters for w in writers},
        next_offsets={w.label: w.status.next_offset for w in writers},
    )
    failed = [writer.error for writer in writers if writer.error is not None]
    if failed:
        raise failed[0]
    stuck = [writer.label for writer in writers if writer.is_alive()]
    if stuck:
        raise Fatal(f"writers did not stop within SHUTDOWN_TIMEOUT_S: {', '.join(stuck)}")
    return ExitCode.OK


def run(settings: ConsumerSettings, path: WritePath) -> int:
    stop = threading.Event()
    stop_on_signals(stop)
    writers = [
        new_writer(settings, product, stop, path, stream)
        for stream in streams(settings)
        for product in settings.owned_products
    ]
    serve(
        settings.consumer_metrics_port,
        lambda: health(writers, settings.health_stall_s, path),
        setting="CONSUMER_METRICS_PORT",
    )
    log.info(
        "consumer starting",
        products=settings.owned_products,
        tables=[stream.name for stream in streams(settings)],
        group=settings.kafka_group_id,
        write_path=path.chosen,
    )
    return supervise(writers, stop, settings.shutdown_timeout_s)
