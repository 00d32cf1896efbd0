"""Faults the producer cannot fix by retrying: it stops reading at once, says so in one line,
counts what it could not deliver, and exits with the code from the table."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError

from ops.http import http_get
from ops.pipeline import PRODUCTS
from producer.publisher import Publisher
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
from tests.producer.test_stalled_client import first_one_wedged, settings_of, silent_broker


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
    publisher = Publisher(settings_of(pipeline, monkeypatch), PartitionMap(PRODUCTS), "test")
    stopped: list[bool] = []
    publisher.on_failure = lambda: stopped.append(True)
    denied = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "denied")
    publisher._not_delivered(publisher.ticks, "BTC-USD", denied)
    assert stopped == [True] and publisher.failure is not None
    assert "TOPIC_AUTHORIZATION_FAILED" in str(publisher.failure)
    assert publisher.close(5) == 1


@pytest.mark.timeout(60)
def test_an_exception_in_the_delivery_thread_is_a_failure_not_a_quiet_end(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_probe() -> TopicState:
        raise RuntimeError("probe broke")

    settings = settings_of(pipeline, monkeypatch)
    publisher = Publisher(settings, PartitionMap(PRODUCTS), "test", stall_s=0.1, probe=broken_probe)
    publisher.watch.probe_after_s = 0.1
    stopped: list[bool] = []
    publisher.on_failure = lambda: stopped.append(True)
    publisher.ticks.refused = True  # work waits: the watch probes, and the probe raises
    wait_for(lambda: publisher.failure is not None, 10, "the delivery thread's failure")
    assert stopped == [True]
    assert "RuntimeError('probe broke')" in str(publisher.failure)
    publisher.close(5)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("close_after_s", [0.0, 0.05, 0.1, 0.2, 0.5, 1.0])
def test_a_replacement_racing_the_final_flush_loses_nothing_uncounted(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, close_after_s: float
) -> None:
    """The first client is wedged (its broker never answers); close() comes at some moment
    of the replacement that moves its ticks to a working client. The delivery thread stops
    before the final flush, so either the move finished and every tick is delivered, or it
    never began and close() counts every tick not delivered: never a tick in neither."""
    with silent_broker() as silent:
        publisher = Publisher(
            settings_of(pipeline, monkeypatch),
            PartitionMap(PRODUCTS),
            "test",
            make_producer=first_one_wedged(silent, []),
            stall_s=0.05,
            probe=lambda: TopicState.READY,
        )
        publisher.watch.probe_after_s = 0.05
        sent = [ticker(PRODUCTS[n % 3], n) for n in range(1, 1001)]
        for n, frame in enumerate(sent, start=1):
            publisher.publish(frame, PRODUCTS[n % 3], n % 3, 0)
        time.sleep(close_after_s)
        undelivered = publisher.close(3)
    delivered = set(read_values(pipeline))
    assert delivered <= set(sent)
    assert len(delivered) + undelivered == len(sent), (len(delivered), undelivered)


def read_values(pipeline: Pipeline) -> list[bytes]:
    return [m.value() or b"" for m in read_all(pipeline.services.bootstrap, pipeline.topic, 3)]
