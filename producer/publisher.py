"""The Kafka side of the producer: raw frames to their product's partition, acknowledged.

Ticks go to KAFKA_TOPIC and, with the trade tape on, match frames to KAFKA_TRADES_TOPIC,
both through the one client here: one bounded buffer (PRODUCER_BUFFER_MESSAGES bounds the
service's memory, whatever the mix), one delivery thread, one replacement of a wedged client
(librdkafka#5301 wedges a client, not a topic: both topics' frames move together), one flush.
Each topic is a `Stream` (producer/streams.py) with its own tallies and progress watch.

The bounded buffer between the socket and the broker is librdkafka's own queue
(`queue.buffering.max.messages`): `produce()` never blocks the read loop. When Kafka stalls
long enough to fill it, new frames are dropped -- reading must go on or Coinbase closes
the connection as a slow consumer, and the feed can't be replayed either way -- and every
dropped frame is counted per product and logged, so exactly what was lost is known.

One thread serves the delivery reports and asks shared/supervision.py about a client that
makes no progress: a wedged client is replaced (its waiting ticks moved to the new one), a
deleted topic or a permanent error becomes `failure`, on which the service stops reading the
feed. `close` stops that thread before the final flush, so no replacement races it, and
counts every tick Kafka never acknowledged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producer import metrics, oversize
from producer.settings import ProducerSettings
from producer.streams import Stream, tick_stream, trade_stream
from shared.dead_letters import PURGED, DeadLetterPublisher, Headers
from shared.failures import Fatal
from shared.kafka_clients import HEADER_RECEIVED_NS, HEADER_SOURCE, reliable_producer
from shared.logs import get_logger
from shared.partitions import PartitionMap
from shared.supervision import (
    MISSING_KAFKA_ERRORS,
    ClientWatch,
    Probe,
    Verdict,
    kafka_failure,
    move_waiting,
    topic_probe,
)

log = get_logger(__name__)

ProducerFactory = Callable[..., Producer]


class Publisher:
    """Publishes ticks and trades (raw bytes, key = product) and dead letters; serves
    delivery reports. `probe` (tests) answers for every topic."""

    def __init__(
        self,
        settings: ProducerSettings,
        partitions: PartitionMap,
        source: str,
        make_producer: ProducerFactory = reliable_producer,
        stall_s: float | None = None,
        probe: Probe | None = None,
    ) -> None:
        self.partitions = partitions
        self._products = partitions.products
        self.capacity = settings.producer_buffer_messages
        self.kafka_reachable = True
        self.failure: Fatal | None = None  # what retrying cannot fix: the service stops on it
        self.on_failure: Callable[[], None] = lambda: None  # called once, from any thread
        self.dead_letters_undelivered = 0
        self._moving = False  # purge reports now mean "send again through the new client"
        self._settings = settings
        self._source = source.encode()
        self._make_producer = make_producer
        count = len(partitions.products)
        topic = settings.kafka_topic
        self.ticks = tick_stream(topic, probe or topic_probe(settings, topic, count), stall_s, log)
        self.trades: Stream | None = None  # the trade tape, when KAFKA_TRADES_TOPIC is set
        if topic := settings.kafka_trades_topic:
            trades_probe = probe or topic_probe(settings, topic, count)
            self.trades = trade_stream(topic, trades_probe, stall_s, log)
        self.streams = [self.ticks] + ([self.trades] if self.trades else [])
        self._producer = self._new_producer()
        self.dead_letters = DeadLetterPublisher(
            self._producer,
            settings.kafka_dlq_topic,
            "producer",
            on_result=self._dead_letter_delivered,
        )
        self._buffer_full_logged_at = 0.0
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, name="delivery", daemon=True)
        self._poller.start()

    @property
    def watch(self) -> ClientWatch:
        """The ticks' watch (the trades' is `trades.watch`)."""
        return self.ticks.watch

    @property
    def replacements(self) -> int:
        return sum(stream.watch.replacements for stream in self.streams)

    @property
    def undelivered(self) -> int:
        """Frames of every stream Kafka refused or never acknowledged."""
        return sum(stream.undelivered for stream in self.streams)

    def _new_producer(self) -> Producer:
        settings = self._settings
        options: dict[str, Any] = {
            "linger.ms": settings.producer_linger_ms,
            "queue.buffering.max.messages": settings.producer_buffer_messages,
            "queue.buffering.max.kbytes": 1024 * 1024,
            "message.timeout.ms": settings.producer_delivery_timeout_ms,
            # Checked before compression: any frame the feed reads may go to the broker.
            "message.max.bytes": oversize.client_max_bytes(settings.feed_max_frame_bytes),
            "error_cb": self._client_error,
        }
        return self._make_producer(settings, **options)

    def publish(self, frame: bytes, product: str, partition: int, received_ns: int) -> bool:
        """Enqueue one tick without blocking; False (counted, logged) if it was not taken."""
        return self._produce(self.ticks, frame, product, partition, received_ns)

    def publish_trade(self, frame: bytes, product: str, partition: int, received_ns: int) -> bool:
        """Enqueue one match frame on the trades topic (the tape must be on), like a tick."""
        if self.trades is None:
            raise RuntimeError("the trade tape is off (KAFKA_TRADES_TOPIC is empty)")
        return self._produce(self.trades, frame, product, partition, received_ns)

    def _produce(
        self, stream: Stream, frame: bytes, product: str, partition: int, received_ns: int
    ) -> bool:
        headers: Headers = [(HEADER_RECEIVED_NS, str(received_ns)), (HEADER_SOURCE, self._source)]
        try:
            self._producer.produce(
                stream.topic,
                value=frame,
                key=product,
                partition=partition,
                headers=headers,
                # Delivery reports carry no headers: kept here, to send a purged frame again.
                on_delivery=partial(self._delivered, stream, headers),
            )
        except BufferError:
            self._drop_buffer_full(stream, product)
            return False
        except KafkaException as exc:  # refused at once: the topic's partition is unknown...
            if oversize.too_large(exc.args[0]):  # ...or the frame is over message.max.bytes
                self._dead_letter_too_large(stream, frame, product, partition, exc.args[0].str())
            else:
                self._not_delivered(stream, product, exc.args[0])
            return False
        stream.handed += 1
        stream.enqueued.add(product)
        return True

    def dead_letter(self, frame: bytes, reason: str, product: str | None) -> None:
        partition = None if product is None else self.partitions.partition(product)
        try:
            self.dead_letters.publish(
                frame, reason, key=product.encode() if product else None, partition=partition
            )
        except BufferError:
            self._drop_buffer_full(self.ticks, product or "unknown")
            return
        log.warning("dead letter", reason=reason, product=product, size=len(frame))

    def in_flight(self) -> int:
        return len(self._producer)

    def stall(self) -> tuple[str, float]:
        """The stream waiting longest without an acknowledgement ("ticks" or "trades") and
        for how many seconds; 0 when nothing waits."""
        buffered = len(self._producer)
        waits = [
            (stream.watch.stalled_for(), stream.name)
            for stream in self.streams
            if self._waiting(stream, buffered)
        ]
        seconds, name = max(waits, default=(0.0, "ticks"))
        return name, seconds

    def stalled_for(self) -> float:
        """Seconds without an acknowledgement while frames wait (0 when nothing waits)."""
        return self.stall()[1]

    def _waiting(self, stream: Stream, buffered: int) -> bool:
        """Whether `stream` has work waiting. Ticks count everything the client holds but
        trades (dead letters and librdkafka's requests too, as before the tape)."""
        if stream is self.ticks:
            trades = self.trades.pending() if self.trades is not None else 0
            return buffered - trades > 0 or stream.refused
        return stream.pending() > 0 or stream.refused

    def close(self, timeout_s: float) -> int:
        """Stop the delivery thread, then flush: returns the frames never delivered, in all
        (per stream in `stream.undelivered`)."""
        self._stop.set()
        self._poller.join()  # no replacement may swap the client under the flush
        left = int(self._producer.flush(timeout_s))
        if left:  # each purged frame is counted by its delivery report
            self._producer.purge(in_queue=True, in_flight=True, blocking=False)
            self._producer.flush(0)
        for stream in self.streams:
            stream.errors.flush()
        return self.undelivered

    def _serve_reports(self) -> None:
        # A thread blocked in poll() serves each acknowledgement as it arrives, so the
        # received -> acked histogram is exact. Serving them from the event loop every 50 ms
        # saved about a tenth of the CPU at 900 ticks/s but skewed that histogram by up to
        # the interval. The long timeout only bounds idle wake-ups (two a second).
        try:
            while not self._stop.is_set() and self.failure is None:
                self._producer.poll(0.5)
                buffered = len(self._producer)
                metrics.BUFFERED.set(buffered)
                metrics.BUFFER_FILL.set(buffered / self.capacity)
                self._supervise(buffered)
        except Fatal as failure:
            self._fail(failure)
        except Exception as exc:  # a bug in a callback must not end delivery quietly
            log.exception("the delivery thread failed")
            self._fail(Fatal(f"the producer's delivery thread failed: {exc!r}"))

    def _supervise(self, buffered: int) -> None:
        """Ask each stream's watch about its topic; replace the client once if one says so."""
        for stream in self.streams:
            if stream.watch.check(self._waiting(stream, buffered)) is Verdict.REPLACE:
                self._replace()
                for other in self.streams:  # the new client gets a whole stall_s from each
                    other.watch.progressed()
                return

    def _replace(self) -> None:
        log.error(
            "Kafka producer stalled although its topic answers; replacing it",
            waiting=len(self._producer),
            stalled_s=self.watch.stall_s,
        )
        old, self._producer = self._producer, self._new_producer()
        self.dead_letters.use(self._producer)
        self._moving = self.dead_letters.moving = True
        try:
            left = move_waiting(old)
        finally:
            self._moving = self.dead_letters.moving = False
        if left:  # librdkafka counts its own requests too: these may not all be frames
            log.warning("the replaced producer still holds messages or requests", held=left)
        # Closed aside: librdkafka waits for its threads, which a wedged client may delay.
        threading.Thread(target=old.close, name="retired", daemon=True).start()

    def _fail(self, failure: Fatal) -> None:
        if self.failure is None:
            self.failure = failure
            self.on_failure()

    def _delivered(
        self, stream: Stream, headers: Headers, error: KafkaError | None, message: Message
    ) -> None:
        # Ticks and trades: dead letters are produced with a delivery callback of their own.
        # Every final report settles its frame; a frame sent again stays pending.
        product = self._products[message.partition() or 0]
        if error is None:
            stream.settled += 1
            stream.watch.progressed()
            self.kafka_reachable, stream.refused = True, False
            stream.published.add(product)
            latency = message.latency()  # since produce(), called as the frame arrived
            if latency is not None and stream.latency is not None:
                stream.latency.observe(latency)
        elif error.code() in PURGED and self._moving:  # moved off a stalled client
            if not self._resend(stream, message, headers, product):
                stream.settled += 1
        elif oversize.too_large(error):
            if not self._refused_too_large(stream, message, headers, product, error):
                stream.settled += 1
        else:
            stream.settled += 1
            self._not_delivered(stream, product, error)

    def _not_delivered(self, stream: Stream, product: str, error: KafkaError) -> None:
        stream.undelivered += 1
        stream.failed.add(product)
        stream.errors.add(error.name(), product=product, error=error.str())
        failure = kafka_failure(error, "producer")
        if failure is not None:
            self._fail(failure)
        elif error.code() in MISSING_KAFKA_ERRORS:
            stream.refused = True  # the delivery thread's probe decides whether it is gone

    def _dead_letter_delivered(self, error: KafkaError | None) -> None:
        if error is None:
            self.ticks.watch.progressed()
            metrics.DEAD_LETTERS.inc()
        elif error.code() not in PURGED or not self._moving:
            self.dead_letters_undelivered += 1
            metrics.DEAD_LETTERS_FAILED.inc()
            self.ticks.errors.add(f"dead letter {error.name()}", error=error.str())

    def _resend(
        self,
        stream: Stream,
        message: Message,
        headers: Headers,
        product: str,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> bool:
        """The frame again, through the current client; False (counted) if it was not taken."""
        try:
            self._producer.produce(
                stream.topic,
                value=message.value(),
                key=message.key(),
                partition=message.partition() or 0,
                headers=headers,
                on_delivery=on_delivery or partial(self._delivered, stream, headers),
            )
        except BufferError:
            self._drop_buffer_full(stream, product)
            return False
        return True

    def _refused_too_large(
        self, stream: Stream, message: Message, headers: Headers, product: str, error: KafkaError
    ) -> bool:
        """The broker refused a batch over the topic's max.message.bytes. A frame of normal
        size in it was only batched with a big one: it is sent once more (True). The big one
        is cut and dead-lettered (sent whole again it would be refused again)."""
        frame = message.value() or b""
        if len(frame) > oversize.LARGE_FRAME_BYTES:
            self._dead_letter_too_large(stream, frame, product, message.partition(), error.str())
            return False
        metrics.LARGE_FRAMES.labels(event="resent").inc()
        stream.errors.add("MSG_SIZE_TOO_LARGE: batched with a larger frame, sent again")
        again = partial(self._delivered_again, stream, headers)
        return self._resend(stream, message, headers, product, on_delivery=again)

    def _delivered_again(
        self, stream: Stream, headers: Headers, error: KafkaError | None, message: Message
    ) -> None:
        """A frame sent again after a too-large refusal: refused twice, it is a dead letter."""
        if oversize.too_large(error):
            stream.settled += 1
            product = self._products[message.partition() or 0]
            frame = message.value() or b""
            self._dead_letter_too_large(stream, frame, product, message.partition(), error.str())
        else:
            self._delivered(stream, headers, error, message)

    def _dead_letter_too_large(
        self, stream: Stream, frame: bytes, product: str, partition: int | None, error: str
    ) -> None:
        """Kafka won't take `frame`: its head goes to the dead letters, with why and its length."""
        reason = f"refused by Kafka as too large ({len(frame)} bytes): {error}"
        try:
            self.dead_letters.publish(frame, reason, key=product.encode(), partition=partition)
        except BufferError:
            self._drop_buffer_full(stream, product)
            return
        metrics.LARGE_FRAMES.labels(event="dead_lettered").inc()
        kind = "MSG_SIZE_TOO_LARGE: dead-lettered, truncated"
        stream.errors.add(kind, product=product, size=len(frame), error=error)

    def _client_error(self, error: KafkaError) -> None:
        # Not on every _TRANSPORT error: a broker closing an idle connection raises one too.
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.kafka_reachable = False
        failure = kafka_failure(error, "producer")
        if failure is not None:
            self._fail(failure)
        log.warning("kafka client error", error=str(error))

    def _drop_buffer_full(self, stream: Stream, product: str) -> None:
        stream.dropped.add(product)
        now = time.monotonic()
        if now - self._buffer_full_logged_at > 1.0:  # loud, but one line a second
            self._buffer_full_logged_at = now
            log.error(
                "KAFKA BUFFER FULL: dropping frames",
                stream=stream.name,
                product=product,
                dropped_total=sum(stream.dropped.total() for stream in self.streams),
                capacity=self.capacity,
            )
