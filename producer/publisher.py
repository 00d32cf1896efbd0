"""The Kafka side of the producer: raw frames to their product's partition, acknowledged.

The bounded buffer between the socket and the broker is librdkafka's own queue
(`queue.buffering.max.messages`): `produce()` never blocks the read loop. When Kafka stalls
long enough to fill it, new frames are dropped -- reading must go on or Coinbase closes
the connection as a slow consumer, and the feed can't be replayed either way -- and every
dropped frame is counted per product and logged, so exactly what was lost is known.

A wedged client is replaced. librdkafka 2.16 can lose every broker for good: a broker in
controlled shutdown answers metadata with no brokers, the client decommissions the one it
knew, and nothing makes it bootstrap again (seen in the broker drill: the producer held
every tick from then on). So ticks waiting without any acknowledgement for `STALL_S`, while
a fresh client reaches the cluster, make the publisher build a new producer and move the
waiting ticks to it (purged from the old one and sent again, after what was published
meanwhile; a purged in-flight batch may reach Kafka twice, which the table's key absorbs).
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
from shared.dead_letters import DEAD_LETTER_KEEP_BYTES, PURGED, DeadLetterPublisher, Headers
from shared.kafka_clients import (
    HEADER_RECEIVED_NS,
    HEADER_SOURCE,
    cluster_answers,
    reliable_producer,
)
from shared.logs import get_logger
from shared.partitions import PartitionMap

log = get_logger(__name__)

STALL_S = 30.0  # ticks waiting this long without one acknowledgement: is the client wedged?
MOVE_TIMEOUT_S = 5.0
ProducerFactory = Callable[..., Producer]


class Publisher:
    """Publishes ticks (raw bytes, key = product) and dead letters; serves delivery reports."""

    def __init__(
        self,
        settings: ProducerSettings,
        partitions: PartitionMap,
        source: str,
        make_producer: ProducerFactory = reliable_producer,
        stall_s: float = STALL_S,
    ) -> None:
        self.topic = settings.kafka_topic
        self.partitions = partitions
        self._products = partitions.products
        self.capacity = settings.producer_buffer_messages
        self.kafka_reachable = True
        self.replacements = 0
        self._settings = settings
        self._source = source.encode()
        self._make_producer = make_producer
        self._stall_s = stall_s
        self._producer = self._new_producer()
        self.dead_letters = DeadLetterPublisher(
            self._producer, settings.kafka_dlq_topic, "producer"
        )
        self._progress_at = time.monotonic()  # last acknowledgement, or when nothing waited
        self._buffer_full_logged_at = 0.0
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, name="delivery", daemon=True)
        self._poller.start()

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
        """Enqueue one tick without blocking; False (counted, logged) if the buffer is full."""
        headers: Headers = [(HEADER_RECEIVED_NS, str(received_ns)), (HEADER_SOURCE, self._source)]
        try:
            self._producer.produce(
                self.topic,
                value=frame,
                key=product,
                partition=partition,
                headers=headers,
                # Delivery reports carry no headers: kept here, to send a purged tick again.
                on_delivery=partial(self._delivered, headers),
            )
        except BufferError:
            self._drop_buffer_full(product)
            return False
        except KafkaException as exc:  # over the client's message.max.bytes
            if not oversize.too_large(exc.args[0]):
                raise
            self._dead_letter_too_large(frame, product, partition, exc.args[0].str())
            return False
        metrics.TICKS_ENQUEUED.add(product)
        return True

    def dead_letter(self, frame: bytes, reason: str, product: str | None) -> None:
        partition = None if product is None else self.partitions.partition(product)
        try:
            self.dead_letters.publish(
                frame, reason, key=product.encode() if product else None, partition=partition
            )
        except BufferError:
            self._drop_buffer_full(product or "unknown")
            return
        metrics.DEAD_LETTERS.inc()
        log.warning("dead letter", reason=reason, product=product, size=len(frame))

    def in_flight(self) -> int:
        return len(self._producer)

    def flush(self, timeout_s: float) -> int:
        """Wait for acknowledgements; returns how many frames are still unacknowledged."""
        remaining = int(self._producer.flush(timeout_s))
        self._stop.set()
        self._poller.join(timeout=2)
        return remaining

    def _serve_reports(self) -> None:
        # A thread blocked in poll() serves each acknowledgement as it arrives, so the
        # received -> acked histogram is exact. Serving them from the event loop every 50 ms
        # saved about a tenth of the CPU at 900 ticks/s but skewed that histogram by up to
        # the interval. The long timeout only bounds idle wake-ups (two a second).
        while not self._stop.is_set():
            self._producer.poll(0.5)
            buffered = len(self._producer)
            metrics.BUFFERED.set(buffered)
            metrics.BUFFER_FILL.set(buffered / self.capacity)
            self._replace_if_wedged(buffered, time.monotonic())

    def _replace_if_wedged(self, buffered: int, now: float) -> None:
        if not buffered:
            self._progress_at = now
            return
        if now - self._progress_at < self._stall_s:
            return
        self._progress_at = now  # look again in another STALL_S, whatever happens now
        if not cluster_answers(self._settings, self.topic):
            return  # a real outage: the client retries on its own and keeps the order
        log.error(
            "Kafka producer stalled although the cluster answers; replacing it",
            waiting=buffered,
            stalled_s=self._stall_s,
        )
        metrics.PRODUCER_REPLACEMENTS.inc()
        self.replacements += 1
        old, self._producer = self._producer, self._new_producer()
        self.dead_letters.use(self._producer)
        left = move_waiting(old)
        if left:  # librdkafka counts its own requests too: these may not all be ticks
            log.warning("the replaced producer still holds messages or requests", held=left)
        # Closed aside: librdkafka waits for its threads, which a wedged client may delay.
        threading.Thread(target=old.close, name="retired", daemon=True).start()
        self._progress_at = time.monotonic()  # the new client gets a whole STALL_S to start

    def _delivered(self, headers: Headers, error: KafkaError | None, message: Message) -> None:
        # Ticks only: dead letters are produced with a delivery callback of their own.
        self._progress_at = time.monotonic()
        product = self._products[message.partition() or 0]
        if error is not None and error.code() in PURGED:  # moved off a stalled producer
            self._resend(message, headers, product)
            return
        if oversize.too_large(error):
            self._refused_too_large(message, headers, product, error)
            return
        if error is None:
            self.kafka_reachable = True
            metrics.TICKS_OUT.add(product)
            latency = message.latency()  # since produce(), called as the frame arrived
            if latency is not None:
                metrics.DELIVERY_SECONDS.observe(latency)
        else:
            metrics.DELIVERY_FAILURES.add(product)
            log.error("delivery failed", product=product, error=str(error))

    def _resend(self, message: Message, headers: Headers, product: str) -> None:
        try:
            self._producer.produce(
                message.topic() or self.topic,
                value=message.value(),
                key=message.key(),
                partition=message.partition() or 0,
                headers=headers,
                on_delivery=partial(self._delivered, headers),
            )
        except BufferError:
            self._drop_buffer_full(product)

    def _refused_too_large(
        self, message: Message, headers: Headers, product: str, error: KafkaError
    ) -> None:
        """The broker refused a batch over the topic's max.message.bytes. A tick-sized frame
        in it was only batched with a big one: it is sent once more. The big one is cut and
        dead-lettered (sent whole again it would be refused again)."""
        frame = message.value() or b""
        if len(frame) > oversize.LARGE_FRAME_BYTES:
            self._dead_letter_too_large(frame, product, message.partition(), error.str())
            return
        metrics.LARGE_FRAMES.labels(event="resent").inc()
        oversize.LOG.warning("tick batched with a frame Kafka refused; sent again", product=product)
        try:
            self._producer.produce(
                message.topic() or self.topic,
                value=frame,
                key=message.key(),
                partition=message.partition() or 0,
                headers=headers,
                on_delivery=partial(self._delivered_again, headers),
            )
        except BufferError:
            self._drop_buffer_full(product)

    def _delivered_again(
        self, headers: Headers, error: KafkaError | None, message: Message
    ) -> None:
        """A tick sent again after a too-large refusal: refused twice, it is a dead letter."""
        if oversize.too_large(error):
            product = self._products[message.partition() or 0]
            frame = message.value() or b""
            self._dead_letter_too_large(frame, product, message.partition(), error.str())
        else:
            self._delivered(headers, error, message)

    def _dead_letter_too_large(
        self, frame: bytes, product: str, partition: int | None, error: str
    ) -> None:
        """Kafka won't take `frame`: its head goes to the dead letters, with why and its length."""
        reason = f"refused by Kafka as too large ({len(frame)} bytes): {error}"
        try:
            self.dead_letters.publish(frame, reason, key=product.encode(), partition=partition)
        except BufferError:
            self._drop_buffer_full(product)
            return
        metrics.LARGE_FRAMES.labels(event="dead_lettered").inc()
        metrics.DEAD_LETTERS.inc()
        oversize.LOG.warning(
            "frame refused by Kafka as too large; dead-lettered, truncated",
            product=product,
            size=len(frame),
            kept=min(len(frame), DEAD_LETTER_KEEP_BYTES),
            error=error,
        )

    def _client_error(self, error: KafkaError) -> None:
        # Not on every _TRANSPORT error: a broker closing an idle connection raises one too.
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.kafka_reachable = False
        log.warning("kafka client error", error=str(error))

    def _drop_buffer_full(self, product: str) -> None:
        metrics.DROPPED_BUFFER_FULL.add(product)
        now = time.monotonic()
        if now - self._buffer_full_logged_at > 1.0:  # loud, but one line a second
            self._buffer_full_logged_at = now
            log.error(
                "KAFKA BUFFER FULL: dropping frames",
                product=product,
                dropped_total=metrics.DROPPED_BUFFER_FULL.total(),
                capacity=self.capacity,
            )


def move_waiting(old: Producer, timeout_s: float = MOVE_TIMEOUT_S) -> int:
    """Purge everything `old` holds; serving the purge reports re-sends each message (the
    delivery callbacks see `_PURGE_*`). Returns what `old` still counts after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while len(old) and time.monotonic() < deadline:
        # Again each round: a tick published while the producers were swapped lands in `old`.
        old.purge(in_queue=True, in_flight=True, blocking=False)
        old.poll(0.1)
    return len(old)
