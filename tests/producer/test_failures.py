"""Faults the producer cannot fix by retrying: it stops reading at once, says so in one line,
counts what it could not deliver, and exits with the code from the table."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, Producer

from ops.http import http_get
from ops.pipeline import PRODUCTS
from producer.publisher import Publisher
from producer.settings import ProducerSettings
from shared.kafka_clients import reliable_producer
from shared.partitions import PartitionMap
from shared.supervision import TopicState
from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import Pipeline
from tests.factories import (
    fatal_line,
    free_port,
    read_all,
    service_stderr,
    start_service,
    ticker,
    wait_for,
)


@pytest.mark.timeout(90)
def test_a_deleted_topic_stops_the_producer_within_seconds_with_one_line(
    pipeline: Pipeline,
) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=100, seed=41)
    port = free_port()
    with SimulatorThread(config) as simulator:
        process = start_service(
            "producer",
            pipeline,
            COINBASE_WS_URL=simulator.url,
            PRODUCER_METRICS_PORT=str(port),
            FLUSH_TIMEOUT_S="1",
        )
        assert simulator.wait_until(lambda s: sum(s.ticker_counts().values()) > 300, 20)
        admin = pipeline.services.admin_client()
        admin.delete_topics([pipeline.topic])[pipeline.topic].result()
        deleted_at = time.monotonic()
        unhealthy = False
        while process.poll() is None and time.monotonic() - deleted_at < 30:
            unhealthy = unhealthy or http_get(f"http://127.0.0.1:{port}/healthz")[0] == 503
            time.sleep(0.2)
        stopped_after = time.monotonic() - deleted_at
    assert process.returncode == 1, stopped_after
    assert stopped_after < 20 and unhealthy
    err = service_stderr(process)
    line = fatal_line(err, 1)
    assert pipeline.topic in line and "gone" in line, line
    assert "ticks not delivered to Kafka" in line
    assert '"producer stopped"' in err  # the closing summary, on a fatal exit too
    assert err.count("Kafka did not take ticks") <= 5  # one line per kind per interval


@pytest.mark.timeout(60)
def test_a_permanent_delivery_error_fails_the_publisher_and_stops_reading(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Authorization and other permanent errors are not retried tick by tick."""
    for name, value in pipeline.env().items():
        monkeypatch.setenv(name, value)
    publisher = Publisher(ProducerSettings(), PartitionMap(PRODUCTS), "test")
    stopped: list[bool] = []
    publisher.on_failure = lambda: stopped.append(True)
    denied = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "denied")
    publisher._not_delivered("BTC-USD", denied)
    assert stopped == [True] and publisher.failure is not None
    assert "TOPIC_AUTHORIZATION_FAILED" in str(publisher.failure)
    assert publisher.close(5) == 1


@pytest.mark.timeout(60)
def test_an_exception_in_the_delivery_thread_is_a_failure_not_a_quiet_end(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in pipeline.env().items():
        monkeypatch.setenv(name, value)

    def broken_probe() -> TopicState:
        raise RuntimeError("probe broke")

    publisher = Publisher(
        ProducerSettings(), PartitionMap(PRODUCTS), "test", stall_s=0.1, probe=broken_probe
    )
    publisher.watch.probe_after_s = 0.1
    stopped: list[bool] = []
    publisher.on_failure = lambda: stopped.append(True)
    publisher._refused = True  # work waits: the watch probes, and the probe raises
    wait_for(lambda: publisher.failure is not None, 10, "the delivery thread's failure")
    assert stopped == [True]
    assert "RuntimeError('probe broke')" in str(publisher.failure)
    publisher.close(5)


@pytest.mark.timeout(90)
def test_a_replacement_racing_the_final_flush_loses_nothing_uncounted(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delivery thread stops before the final flush: ticks moved to a new client just
    before it are flushed by it, and close() counts every tick not delivered."""
    for name, value in pipeline.env().items():
        monkeypatch.setenv(name, value)
    made: list[Producer] = []

    def counting(settings: ProducerSettings, **options: object) -> Producer:
        made.append(reliable_producer(settings, **options))
        return made[-1]

    publisher = Publisher(
        ProducerSettings(),
        PartitionMap(PRODUCTS),
        "test",
        make_producer=counting,
        stall_s=0.05,
        probe=lambda: TopicState.READY,
    )
    publisher.watch.probe_after_s = 0.05
    for sequence in range(1, 3001):
        product = PRODUCTS[sequence % 3]
        publisher.publish(ticker(product, sequence), product, PRODUCTS.index(product), 0)
    # Every 50 ms without an acknowledgement the watch replaces the client: some
    # replacements land while ticks are in flight; close() then races none of them.
    undelivered = publisher.close(20)
    values = read_values(pipeline)
    assert len(set(values)) + undelivered >= 3000
    assert undelivered == 0 or publisher.failure is None


def read_values(pipeline: Pipeline) -> list[bytes]:
    return [m.value() or b"" for m in read_all(pipeline.services.bootstrap, pipeline.topic, 3)]
