"""Fetched trades to the trades topic: each REST object unchanged, keyed by product, on the
product's partition, header source=rest, through the idempotent producer; `confirm` waits for
Kafka's acknowledgements and says which ids it did not get."""

from __future__ import annotations

import time
from functools import partial

from confluent_kafka import KafkaError, Message, Producer

from repair.body import RestTrade
from shared.failures import Fatal
from shared.kafka_clients import HEADER_RECEIVED_NS, HEADER_SOURCE, reliable_producer
from shared.partitions import PartitionMap
from shared.settings import CommonSettings
from shared.supervision import ClientWatch, kafka_failure, topic_probe

SOURCE_REST = "rest"
FLUSH_STEP_S = 1.0


class Undelivered(Exception):
    """Kafka did not acknowledge every trade since the last `confirm` (they stay missing in
    `trade`, so a later pass fetches them again)."""


class TradePublisher:
    """Publishes REST trades; `confirm` returns once Kafka acknowledged every one of them."""

    def __init__(self, settings: CommonSettings, delivery_timeout_s: float) -> None:
        self._settings = settings
        self._topic = settings.kafka_trades_topic
        self._partitions = PartitionMap(settings.products)
        self._timeout_ms = int(delivery_timeout_s * 1000)
        self._producer = self._new_producer()
        # Raises TopicGone once the cluster answers without the topic (deleted mid-run).
        self._watch = ClientWatch(
            "repair",
            self._topic,
            topic_probe(settings, self._topic, len(settings.products)),
            stall_s=float("inf"),
        )
        self._failed: dict[str, list[int]] = {}
        self._reason = ""
        self._fatal: Fatal | None = None

    def _new_producer(self) -> Producer:
        return reliable_producer(
            self._settings, **{"delivery.timeout.ms": self._timeout_ms, "linger.ms": 20}
        )

    def publish(self, product: str, trades: list[RestTrade], received_ns: int) -> None:
        partition = self._partitions.partition(product)
        if partition is None:
            raise ValueError(f"{product} is not in PRODUCTS")
        headers: dict[str, str | bytes | None] = {
            HEADER_SOURCE: SOURCE_REST,
            HEADER_RECEIVED_NS: str(received_ns),
        }
        for trade in trades:
            while True:
                try:
                    self._producer.produce(
                        self._topic,
                        trade.raw,
                        product.encode(),
                        partition,
                        headers=headers,
                        on_delivery=partial(self._delivered, product, trade.trade_id),
                    )
                    break
                except BufferError:  # librdkafka's queue is full: serve acknowledgements
                    self._producer.poll(0.05)
        self._producer.poll(0)

    def confirm(self) -> None:
        """Wait for every acknowledgement; raises Undelivered or a Fatal Kafka failure."""
        deadline = time.monotonic() + self._timeout_ms / 1000 + 5
        while self._producer.flush(FLUSH_STEP_S) and time.monotonic() < deadline:
            self._raise_fatal()
            self._watch.check(waiting=True)
        self._watch.progressed()
        self._raise_fatal()
        waiting = len(self._producer)
        if waiting or self._failed:
            # A fresh client for the next attempt: librdkafka can wedge for good (supervision.py).
            old, self._producer = self._producer, self._new_producer()
            old.purge()
            old.flush(0)  # the purged ones report here, before the counts are reset
            failed = sum(len(ids) for ids in self._failed.values())
            reason = self._reason or "timeout"
            self._failed, self._reason = {}, ""
            raise Undelivered(f"{waiting} unacknowledged, {failed} failed: {reason}")

    def close(self, timeout_s: float = 10.0) -> int:
        """Deliver what is still queued (a stop mid-hole); returns what was left."""
        return int(self._producer.flush(timeout_s))

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def _delivered(
        self, product: str, trade_id: int, error: KafkaError | None, _message: Message
    ) -> None:
        if error is None:
            return
        fatal = kafka_failure(error, "repair")
        if fatal is not None and self._fatal is None:
            self._fatal = fatal
        self._failed.setdefault(product, []).append(trade_id)
        self._reason = f"{error.name()}: {error.str()}"
