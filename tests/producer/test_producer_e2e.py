"""The producer against the simulator (real WebSocket) and the real broker."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ops.http import http_get
from ops.pipeline import PRODUCTS
from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import Pipeline
from tests.factories import (
    free_port,
    read_all,
    service_stderr,
    start_service,
    stop_service,
    wait_for,
)


def published(pipeline: Pipeline) -> dict[str, list[bytes]]:
    """Raw values per product, in partition order, checking key and partition on the way."""
    found: dict[str, list[bytes]] = {product: [] for product in PRODUCTS}
    for message in read_all(pipeline.services.bootstrap, pipeline.topic, 3, timeout_s=20):
        product = (message.key() or b"").decode()
        assert message.partition() == PRODUCTS.index(product), product
        headers = dict(message.headers() or [])
        assert int(headers["received_ns"] or b"0") > 0
        found[product].append(message.value() or b"")
    for values in found.values():
        values.sort(key=lambda value: json.loads(value).get("sequence", 0))
    return found


def sent(simulator: SimulatorThread) -> dict[str, list[bytes]]:
    return {product: simulator.sent_tickers().get(product, []) for product in PRODUCTS}


def delivered(simulator: SimulatorThread) -> dict[str, list[bytes]]:
    """What the feed wrote to a connection (the feed broadcasts: a tick made while
    no connection was up is in sent() but never reached the producer)."""
    return {product: simulator.delivered_tickers().get(product, []) for product in PRODUCTS}


@contextmanager
def running_producer(pipeline: Pipeline, simulator: SimulatorThread, **env: str) -> Iterator[Any]:
    """One feed connection unless `env` says otherwise: these tests are about one session."""
    env = {"FEED_CONNECTIONS": "1", **env}
    process = start_service("producer", pipeline, COINBASE_WS_URL=simulator.url, **env)
    try:
        yield process
    finally:
        if process.poll() is None:
            stop_service(process)


@pytest.mark.timeout(60)
def test_every_frame_arrives_once_on_its_partition_byte_identical(pipeline: Pipeline) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=300, count=400, seed=7)
    with SimulatorThread(config) as simulator:
        process = start_service(
            "producer", pipeline, COINBASE_WS_URL=simulator.url, FEED_CONNECTIONS="1"
        )
        assert simulator.wait_until(lambda s: s.done(), timeout=30)
        time.sleep(0.5)
        code, err = stop_service(process)
        assert code == 0, err
        expected = sent(simulator)
    assert {p: len(v) for p, v in expected.items()} == {p: 401 for p in PRODUCTS}  # + snapshot
    assert published(pipeline) == expected


@pytest.mark.timeout(60)
@pytest.mark.parametrize("drop_code", [1000, 1001, 1011])
def test_dropped_connection_is_back_and_resubscribed(pipeline: Pipeline, drop_code: int) -> None:
    config = SimulatorConfig(
        products=PRODUCTS, rate=200, count=300, seed=3, drop_after_messages=250, drop_code=drop_code
    )
    with SimulatorThread(config) as simulator:
        with running_producer(pipeline, simulator) as process:
            assert simulator.wait_until(lambda s: s.connections >= 2, timeout=15)
            assert simulator.wait_until(lambda s: s.done(), timeout=30)
            time.sleep(0.5)
            code, err = stop_service(process)
            assert code == 0, err
        subscribes = simulator.subscribe_messages()
        expected = delivered(simulator)
    assert len(subscribes) >= 2
    assert all(sorted(message["product_ids"]) == sorted(PRODUCTS) for message in subscribes)
    assert published(pipeline) == expected
    assert "reconnect window" in err


@pytest.mark.timeout(60)
def test_aborted_connection_loses_nothing_it_received(pipeline: Pipeline) -> None:
    config = SimulatorConfig(
        products=PRODUCTS, rate=200, count=300, seed=4, drop_after_messages=200, drop_code="abort"
    )
    with SimulatorThread(config) as simulator:
        with running_producer(pipeline, simulator) as process:
            assert simulator.wait_until(lambda s: s.connections >= 3, timeout=20)
            assert simulator.wait_until(lambda s: s.done(), timeout=30)
            time.sleep(0.5)
            stop_service(process)
        expected = delivered(simulator)
    found = published(pipeline)
    for product in PRODUCTS:
        assert len(set(found[product])) == len(found[product]), "a frame was published twice"
        assert set(found[product]) <= set(expected[product])
        # An abort can only lose what was still in the server's socket buffers.
        assert len(found[product]) >= len(expected[product]) - 50


@pytest.mark.timeout(60)
def test_stalled_feed_is_detected_and_reconnected(pipeline: Pipeline) -> None:
    config = SimulatorConfig(
        products=PRODUCTS, rate=100, count=200, seed=5, stall_after_messages=60, stall_seconds=30
    )
    with (
        SimulatorThread(config) as simulator,
        running_producer(pipeline, simulator, FEED_STALE_AFTER_S="1.5") as process,
    ):
        assert simulator.wait_until(lambda s: s.connections >= 2, timeout=15)
        code, err = stop_service(process)
    assert code == 0
    assert "feed stale" in err


@pytest.mark.timeout(60)
def test_error_frame_leads_to_reconnect(pipeline: Pipeline) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=100, seed=6, error_after_messages=30)
    with SimulatorThread(config) as simulator, running_producer(pipeline, simulator) as process:
        assert simulator.wait_until(lambda s: s.connections >= 2, timeout=15)
        code, err = stop_service(process)
    assert code == 0
    assert "feed sent an error" in err


@pytest.mark.timeout(60)
def test_malformed_frames_go_to_dead_letters_and_producer_keeps_running(
    pipeline: Pipeline,
) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=200, count=200, seed=8, malformed_every=25)
    with SimulatorThread(config) as simulator:
        with running_producer(pipeline, simulator) as process:
            assert simulator.wait_until(lambda s: s.done(), timeout=30)
            time.sleep(0.5)
            assert process.poll() is None, "producer died on malformed frames"
            code, err = stop_service(process)
            assert code == 0, err
        malformed = simulator.sent_malformed()
        expected = sent(simulator)
    assert malformed
    dead = read_all(pipeline.services.bootstrap, pipeline.dlq_topic, 3)
    assert Counter(message.value() or b"" for message in dead) == Counter(malformed)
    assert all(dict(message.headers() or [])["reason"] for message in dead)
    assert published(pipeline) == expected


@pytest.mark.timeout(60)
def test_sigterm_flushes_everything_received(pipeline: Pipeline) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=0, count=3000, seed=9)
    with SimulatorThread(config) as simulator:
        process = start_service(
            "producer", pipeline, COINBASE_WS_URL=simulator.url, FEED_CONNECTIONS="1"
        )
        assert simulator.wait_until(lambda s: sum(s.ticker_counts().values()) > 1500, timeout=30)
        code, err = stop_service(process)  # mid-stream
        expected = sent(simulator)
    assert code == 0, err
    found = published(pipeline)
    for product in PRODUCTS:
        # Everything the producer read was published; the rest was never read.
        assert found[product] == expected[product][: len(found[product])]
    assert "producer stopped" in err and '"undelivered": 0' in err


@pytest.mark.timeout(60)
def test_authenticated_subscribe_is_signed_and_secrets_stay_out_of_logs(
    pipeline: Pipeline,
) -> None:
    secret = base64.b64encode(b"very-secret-key-bytes").decode()
    config = SimulatorConfig(products=PRODUCTS, rate=50, count=20, seed=10)
    with SimulatorThread(config) as simulator:
        with running_producer(
            pipeline,
            simulator,
            COINBASE_API_KEY="key-123",
            COINBASE_API_SECRET=secret,
            COINBASE_API_PASSPHRASE="pass-phrase-xyz",
        ) as process:
            assert simulator.wait_until(lambda s: s.done(), timeout=20)
            _code, err = stop_service(process)
        (subscribe,) = simulator.subscribe_messages()
    assert subscribe["key"] == "key-123" and subscribe["passphrase"] == "pass-phrase-xyz"
    assert isinstance(subscribe["timestamp"], str) and subscribe["timestamp"].isdigit()
    assert len(base64.b64decode(subscribe["signature"])) == 32
    assert secret not in err and "pass-phrase-xyz" not in err


@pytest.mark.timeout(60)
def test_health_and_metrics_endpoints(pipeline: Pipeline) -> None:
    port = free_port()
    config = SimulatorConfig(products=PRODUCTS, rate=100, seed=11)
    with (
        SimulatorThread(config) as simulator,
        running_producer(pipeline, simulator, PRODUCER_METRICS_PORT=str(port)),
    ):
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(url + "/healthz")[0] == 200, 15, "healthy producer")
        status, body = http_get(url + "/metrics")
        assert status == 200
        assert b'producer_ticks_received_total{product="BTC-USD"}' in body
        assert b"producer_delivery_seconds_bucket" in body


def test_bad_setting_stops_the_producer_with_one_line(pipeline: Pipeline) -> None:
    process = start_service("producer", pipeline, COINBASE_WS_URL="http://not-a-websocket")
    process.wait(timeout=30)
    err = service_stderr(process)
    assert process.returncode == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("invalid setting COINBASE_WS_URL")


@pytest.mark.timeout(60)
def test_connections_that_worked_do_not_slow_down_later_reconnects(pipeline: Pipeline) -> None:
    # Without resetting the backoff after a working session, waits would grow 0.25, 0.5,
    # 1, 2, 4 s ... and six seconds would see at most five connections.
    config = SimulatorConfig(products=PRODUCTS, rate=100, seed=12, drop_after_messages=20)
    with SimulatorThread(config) as simulator, running_producer(pipeline, simulator):
        time.sleep(6)
        connections = simulator.connections
    assert connections >= 8
