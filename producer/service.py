"""`python -m producer`: feed -> route -> publish, until SIGTERM/SIGINT, then flush and exit
(0, or 3 when ticks or trades were not delivered; 1 when Kafka failed for good)."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from producer import metrics, oversize
from producer.feed import Feed, FeedState
from producer.publisher import Publisher
from producer.router import (
    REMEMBERED_FRAMES,
    Control,
    FeedError,
    Match,
    RecentFrames,
    Reject,
    SequenceWatch,
    Tick,
    route,
)
from producer.settings import ProducerSettings
from producer.tape import TradeTape
from shared.failures import ExitCode, Fatal
from shared.logs import get_logger
from shared.observability import serve
from shared.partitions import PartitionMap

log = get_logger(__name__)

FAILED_FLUSH_S = 2.0  # after a fatal failure: time for acknowledgements already on their way


class FrameDispatcher:
    """What happens to each frame of every connection, in arrival order (never blocks)."""

    def __init__(
        self,
        partitions: PartitionMap,
        publisher: Publisher,
        feed: FeedState,
        connections: int,
        tape: TradeTape | None = None,
    ) -> None:
        self.partitions = partitions
        self.publisher = publisher
        self.tape = tape  # None: the trade tape is off, match frames are control frames
        self._matches = tape is not None
        self.watch = SequenceWatch()
        # One connection never repeats a frame: nothing to remember then.
        self.published = RecentFrames(REMEMBERED_FRAMES if connections > 1 else 0)
        self.feed = feed  # whether every connection was down between two ticks
        self._outages_seen: dict[str, int] = {}

    def __call__(self, frame: bytes, received_ns: int, connection: str) -> bool:
        metrics.CONNECTION_FRAMES.add(connection)
        if len(frame) > oversize.LARGE_FRAME_BYTES:
            oversize.received(len(frame))  # counted and logged, then handled like any frame
        repeated = self.published.product(frame)
        if repeated is not None:  # another connection's copy of a published tick
            metrics.FRAMES.add("ticker")
            metrics.TICKS_REPEATED.add(repeated)
            return True
        routed = route(frame, self.partitions, self._matches)
        if isinstance(routed, Tick):
            metrics.FRAMES.add("ticker")
            self.on_tick(routed, frame, received_ns, connection)
        elif isinstance(routed, Match):
            metrics.FRAMES.add(routed.kind)
            if self.tape is not None:  # always so: route() makes matches only for a tape
                self.tape.on_match(routed, frame, received_ns)
        elif isinstance(routed, Control):
            metrics.FRAMES.add(routed.type[:32])
        elif isinstance(routed, Reject):
            # Once per connection that received it: a bad frame has no key to dedupe on.
            metrics.FRAMES.add("rejected")
            self.publisher.dead_letter(frame, routed.reason, routed.product)
        elif isinstance(routed, FeedError):
            metrics.FRAMES.add("error")
            log.error(
                "feed sent an error; reconnecting", connection=connection, message=routed.message
            )
            return False
        return True

    def on_tick(self, tick: Tick, frame: bytes, received_ns: int, connection: str) -> None:
        verdict = self.watch.check(tick)
        if not verdict.publish:
            metrics.TICKS_REPEATED.add(tick.product)  # another connection delivered it first
            return
        metrics.TICKS_IN.add(tick.product)
        metrics.CONNECTION_FIRST.add(connection)
        if verdict.anomaly is not None:
            metrics.SEQUENCE_ANOMALIES.labels(product=tick.product, kind=verdict.anomaly).inc()
            log.warning(
                "sequence anomaly; tick published",
                product=tick.product,
                kind=verdict.anomaly,
                previous_sequence=verdict.previous_sequence,
                sequence=tick.sequence,
                connection=connection,
            )
        if verdict.trade_gap:
            # Normal in bursts (tickers batch trades): counted, not logged line by line.
            metrics.TRADE_GAPS.add(tick.product)
            metrics.MISSED_TRADES.add(tick.product, verdict.trade_gap)
        self._note_outage(tick)
        self.publisher.publish(frame, tick.product, tick.partition, received_ns)
        # A frame without a sequence is not a repeat by the contract. A large one is not kept
        # by its bytes (2,000 of 16 MiB would be 32 GB): its copies meet the sequence check.
        if tick.sequence is not None and len(frame) <= oversize.LARGE_FRAME_BYTES:
            self.published.add(frame, tick.product)

    def _note_outage(self, tick: Tick) -> None:
        outages = self.feed.outages
        seen = self._outages_seen.get(tick.product)
        if seen is not None and seen != outages:
            # Every connection was down meanwhile; the feed can't replay what it sent then.
            metrics.RECONNECT_GAPS.labels(product=tick.product).inc()
            log.warning(
                "reconnect window: no connection was live, ticks may be missing",
                product=tick.product,
                resumed_sequence=tick.sequence,
                resumed_trade_id=tick.trade_id,
            )
        self._outages_seen[tick.product] = outages


def health(
    settings: ProducerSettings, feed: Feed, publisher: Publisher
) -> tuple[bool, dict[str, Any]]:
    now = time.monotonic()
    connections = [
        {
            "connection": state.label,
            "connected": state.connected,
            "connects": state.connects,
            "seconds_since_frame": round(now - state.last_frame_at, 3),
        }
        for state in feed.state.connections
    ]
    live = [
        state
        for state in feed.state.connections
        if state.connected and now - state.last_frame_at < settings.feed_stale_after_s
    ]
    fill = publisher.in_flight() / publisher.capacity
    stalled, stalled_s = publisher.stall()
    problems = [
        problem
        for problem, present in (
            (f"failed: {publisher.failure}", publisher.failure is not None),
            ("no live feed connection", not live),
            ("Kafka unreachable", not publisher.kafka_reachable),
            (
                f"{stalled} waiting {stalled_s:.0f} s without an acknowledgement",
                stalled_s >= settings.health_stall_s,
            ),
            (f"buffer {fill:.0%} full", fill >= 0.9),
        )
        if present
    ]
    metrics.STALLED.set(int(publisher.failure is not None or stalled_s >= settings.health_stall_s))
    details = {
        "reason": "; ".join(problems) or None,
        "live_connections": len(live),
        "connections": connections,
        "kafka_reachable": publisher.kafka_reachable,
        "buffer_fill": round(fill, 4),
        "seconds_without_ack": round(stalled_s, 1),
    }
    return not problems, details


async def run(settings: ProducerSettings) -> int:
    """Until SIGTERM/SIGINT or a failure; one shutdown path: the feed stops, then the
    publisher (its delivery thread first, then the flush), then the summary, then the code."""
    partitions = PartitionMap(settings.products)
    publisher = Publisher(settings, partitions, source=settings.coinbase_ws_url)
    tape = TradeTape(publisher) if publisher.trades is not None else None
    feed_state = FeedState()
    dispatcher = FrameDispatcher(partitions, publisher, feed_state, settings.feed_connections, tape)
    feed = Feed(settings, dispatcher, feed_state)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, feed.stop.set)

    def stop_reading() -> None:  # the moment Kafka fails for good, rather than drop ticks
        loop.call_soon_threadsafe(feed.stop.set)

    publisher.on_failure = stop_reading
    try:
        serve(
            settings.producer_metrics_port,
            lambda: health(settings, feed, publisher),
            setting="PRODUCER_METRICS_PORT",
        )
        log.info(
            "producer starting",
            products=settings.products,
            topic=settings.kafka_topic,
            trades_topic=settings.kafka_trades_topic or "off",
            connections=settings.feed_connections,
        )
        await feed.run()
    finally:
        log.info("stopping: flushing Kafka", in_flight=publisher.in_flight())
        flush_s = settings.flush_timeout_s
        if publisher.failure is not None:  # Kafka failed for good: what waits stays there
            flush_s = min(flush_s, FAILED_FLUSH_S)
        undelivered = await asyncio.to_thread(publisher.close, flush_s)
        if tape is not None:
            tape.flush()
        log.info(
            "producer stopped",
            received=dict(metrics.TICKS_IN.values),
            repeats_skipped=dict(metrics.TICKS_REPEATED.values),
            first_by_connection=dict(metrics.CONNECTION_FIRST.values),
            enqueued=dict(metrics.TICKS_ENQUEUED.values),
            delivered=dict(metrics.TICKS_OUT.values),
            not_delivered=dict(metrics.DELIVERY_FAILURES.values),
            dropped_buffer_full=dict(metrics.DROPPED_BUFFER_FULL.values),
            dead_lettered_too_large=oversize.dead_lettered(),  # Kafka refused: in the DLQ, cut
            dead_letters_not_delivered=publisher.dead_letters_undelivered,
            trades=trades_summary(publisher),
            undelivered=undelivered,
        )
    lost = not_delivered(publisher)
    if publisher.failure is not None:
        raise Fatal(f"{publisher.failure}; {lost}")
    if undelivered:
        # Non-zero: these frames are lost unless the feed is replayed (trades: repaired from
        # REST), and an orchestrator or drill must see that, not a clean stop.
        raise Fatal(
            f"{lost} (refused, or not acknowledged within "
            f"FLUSH_TIMEOUT_S={settings.flush_timeout_s:g})",
            ExitCode.UNDELIVERED,
        )
    return ExitCode.OK


def trades_summary(publisher: Publisher) -> dict[str, Any] | str:
    """The trade tape's part of the closing line, per product ("off" without a tape)."""
    if publisher.trades is None:
        return "off"
    return {
        "topic": publisher.trades.topic,
        "received": dict(metrics.TRADES_IN.values),
        "repeats_skipped": dict(metrics.TRADES_REPEATED.values),
        "holes": dict(metrics.TRADE_HOLES.values),
        "missing_trade_ids": dict(metrics.TRADE_IDS_MISSING.values),
        "late": dict(metrics.TRADES_LATE.values),
        "enqueued": dict(metrics.TRADES_ENQUEUED.values),
        "delivered": dict(metrics.TRADES_OUT.values),
        "not_delivered": dict(metrics.TRADES_DELIVERY_FAILURES.values),
        "dropped_buffer_full": dict(metrics.TRADES_DROPPED_BUFFER_FULL.values),
        "undelivered": publisher.trades.undelivered,
    }


def not_delivered(publisher: Publisher) -> str:
    """'N ticks not delivered to Kafka', with the trades when the tape is on."""
    ticks = publisher.ticks.undelivered
    if publisher.trades is None:
        return f"{ticks} ticks not delivered to Kafka"
    return f"{ticks} ticks and {publisher.trades.undelivered} trades not delivered to Kafka"
