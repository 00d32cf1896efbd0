"""`python -m producer`: feed -> route -> publish, until SIGTERM/SIGINT, then flush and exit 0."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from producer import metrics
from producer.feed import Feed, FeedState
from producer.publisher import Publisher
from producer.router import Control, FeedError, Reject, SequenceWatch, Tick, route
from shared.logs import get_logger
from shared.observability import serve
from shared.partitions import PartitionMap
from shared.settings import ProducerSettings

log = get_logger(__name__)


class FrameHandler:
    """What happens to each frame, in arrival order, on the read loop (never blocks)."""

    def __init__(self, partitions: PartitionMap, publisher: Publisher, feed: FeedState) -> None:
        self.partitions = partitions
        self.publisher = publisher
        self.watch = SequenceWatch()
        self.feed = feed  # which connection a tick came on: reconnect windows
        self._session_of: dict[str, int] = {}

    def __call__(self, frame: bytes, received_ns: int) -> bool:
        routed = route(frame, self.partitions)
        if isinstance(routed, Tick):
            metrics.FRAMES.add("ticker")
            metrics.TICKS_IN.add(routed.product)
            self.on_tick(routed, frame, received_ns)
        elif isinstance(routed, Control):
            metrics.FRAMES.add(routed.type[:32])
        elif isinstance(routed, Reject):
            metrics.FRAMES.add("rejected")
            self.publisher.dead_letter(frame, routed.reason, routed.product)
        elif isinstance(routed, FeedError):
            metrics.FRAMES.add("error")
            log.error("feed sent an error; reconnecting", message=routed.message)
            return False
        return True

    def on_tick(self, tick: Tick, frame: bytes, received_ns: int) -> None:
        verdict = self.watch.check(tick)
        if not verdict.publish:
            metrics.DROPPED_SEQUENCE.labels(product=tick.product, reason=verdict.drop_reason).inc()
            log.warning(
                "tick dropped",
                product=tick.product,
                reason=verdict.drop_reason,
                sequence=tick.sequence,
            )
            return
        if verdict.trade_gap:
            # Normal in bursts (tickers batch trades): counted, not logged line by line.
            metrics.TRADE_GAPS.add(tick.product)
            metrics.MISSED_TRADES.add(tick.product, verdict.trade_gap)
        session = self.feed.connects
        previous = self._session_of.get(tick.product)
        if previous is not None and previous != session:
            # Nothing the server sent while we were away can be had again from the feed.
            metrics.RECONNECT_GAPS.labels(product=tick.product).inc()
            log.warning(
                "reconnect window: ticks may be missing",
                product=tick.product,
                resumed_sequence=tick.sequence,
                resumed_trade_id=tick.trade_id,
            )
        self._session_of[tick.product] = session
        self.publisher.publish(frame, tick.product, tick.partition, received_ns)


def health(
    settings: ProducerSettings, feed: Feed, publisher: Publisher
) -> tuple[bool, dict[str, Any]]:
    silent_for = time.monotonic() - feed.state.last_frame_at
    fill = publisher.in_flight() / publisher.capacity
    details = {
        "feed_connected": feed.state.connected,
        "seconds_since_frame": round(silent_for, 3),
        "kafka_reachable": publisher.kafka_reachable,
        "buffer_fill": round(fill, 4),
        "connects": feed.state.connects,
    }
    healthy = (
        feed.state.connected
        and silent_for < settings.feed_stale_after_s
        and publisher.kafka_reachable
        and fill < 0.9
    )
    return healthy, details


async def run(settings: ProducerSettings) -> int:
    partitions = PartitionMap(settings.products)
    publisher = Publisher(settings, partitions, source=settings.coinbase_ws_url)
    feed_state = FeedState()
    feed = Feed(settings, FrameHandler(partitions, publisher, feed_state), feed_state)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, feed.stop.set)
    serve(settings.producer_metrics_port, lambda: health(settings, feed, publisher))
    log.info("producer starting", products=settings.products, topic=settings.kafka_topic)
    await feed.run()
    log.info("stopping: flushing Kafka", in_flight=publisher.in_flight())
    remaining = await asyncio.to_thread(publisher.flush, settings.flush_timeout_s)
    log.info(
        "producer stopped",
        received=dict(metrics.TICKS_IN.values),
        enqueued=dict(metrics.TICKS_ENQUEUED.values),
        delivered=dict(metrics.TICKS_OUT.values),
        failed=dict(metrics.DELIVERY_FAILURES.values),
        dropped_buffer_full=dict(metrics.DROPPED_BUFFER_FULL.values),
        unacknowledged=remaining,
    )
    return 0
