"""A wedged Kafka client is replaced, and the ticks it held reach Kafka once each.

The stalled client is a real librdkafka producer whose only broker address accepts TCP
connections and never answers: from outside it looks like the one seen in the broker drill
(librdkafka 2.16 left without any broker after a controlled shutdown), ticks waiting and no
acknowledgement, ever.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from confluent_kafka import Producer

from ops.pipeline import PRODUCTS
from producer.publisher import Publisher
from producer.settings import ProducerSettings
from shared.kafka_clients import reliable_producer
from shared.partitions import PartitionMap
from shared.supervision import PROBE_TIMEOUT_S
from tests.conftest import Pipeline
from tests.factories import read_all, ticker, wait_for


@contextmanager
def silent_broker() -> Iterator[str]:
    """An address whose connections are accepted by the kernel and never answered."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"127.0.0.1:{server.getsockname()[1]}"


def first_one_wedged(silent: str, addresses: list[str]) -> Callable[..., Producer]:
    """A producer factory whose first client talks to `silent`, later ones to the broker;
    `addresses` records where each client went."""

    def make(settings: ProducerSettings, **options: Any) -> Producer:
        address = silent if not addresses else settings.kafka_bootstrap_servers
        addresses.append(address)
        update = {"kafka_bootstrap_servers": address}
        return reliable_producer(settings.model_copy(update=update), **options)

    return make


def settings_of(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, **env: str
) -> ProducerSettings:
    for name, value in pipeline.env(**env).items():
        monkeypatch.setenv(name, value)
    return ProducerSettings()


def publish(publisher: Publisher, first_sequence: int, count: int) -> list[bytes]:
    frames = []
    for sequence in range(first_sequence, first_sequence + count):
        product = PRODUCTS[sequence % len(PRODUCTS)]
        frame = ticker(product, sequence)
        assert publisher.publish(frame, product, PRODUCTS.index(product), time.time_ns())
        frames.append(frame)
    return frames


@pytest.mark.timeout(90)
def test_a_stalled_client_is_replaced_and_the_ticks_it_held_are_delivered_once(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(pipeline, monkeypatch)
    addresses: list[str] = []
    with silent_broker() as silent:
        publisher = Publisher(
            settings,
            PartitionMap(PRODUCTS),
            "test",
            make_producer=first_one_wedged(silent, addresses),
            stall_s=5,
        )
        held = publish(publisher, 1, 60)
        publisher.dead_letter(b"{not json", "not JSON", "BTC-USD")
        wait_for(lambda: publisher.replacements == 1, 30, "the stalled producer replaced")
        after = publish(publisher, 61, 30)
        assert publisher.close(20) == 0
    assert addresses == [silent, settings.kafka_bootstrap_servers]
    records = read_all(pipeline.services.bootstrap, pipeline.topic, 3)
    assert Counter(m.value() for m in records) == Counter(held + after)  # each once
    assert all(dict(m.headers() or [])["received_ns"] for m in records)  # headers kept
    (dead,) = read_all(pipeline.services.bootstrap, pipeline.dlq_topic, 3)
    assert dead.value() == b"{not json" and dict(dead.headers() or [])["reason"] == b"not JSON"


@pytest.mark.timeout(60)
def test_no_replacement_while_the_cluster_itself_is_unreachable(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker outage is not a wedged client: the producer keeps its ticks, in order, and
    retries on its own; only a fresh client reaching the cluster proves the stall is ours."""
    with silent_broker() as silent:
        settings = settings_of(pipeline, monkeypatch, KAFKA_BOOTSTRAP_SERVERS=silent)
        publisher = Publisher(settings, PartitionMap(PRODUCTS), "test", stall_s=0.2)
        publish(publisher, 1, 10)
        time.sleep(2 * PROBE_TIMEOUT_S + 1)  # two stall periods, each with a failed probe
        assert publisher.replacements == 0
        assert publisher.in_flight() >= 10  # still held (librdkafka counts its requests too)
        assert publisher.close(0) == 10  # and, at a stop without Kafka, each counted lost
