"""Start-up edges: --help, a one-partition dead-letter topic, a metrics port already taken."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

from ops.pipeline import PRODUCTS
from shared.failures import EXIT_CODES_HELP
from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import ROOT, Pipeline, create_topic, python_env
from tests.factories import (
    fatal_line,
    free_port,
    produce,
    read_all,
    row_count,
    service_stderr,
    start_service,
    stop_service,
    wait_for,
)


@pytest.mark.parametrize("module", ["producer", "simulator"])
def test_help_prints_usage_and_exits_without_starting(module: str) -> None:
    # An unreachable broker: anything that started would hang or fail, not exit 0 at once.
    env = python_env({"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m {module}".encode())
    assert time.monotonic() - started < 20
    if module == "producer":
        assert b"FEED_CONNECTIONS" in done.stdout
        assert EXIT_CODES_HELP.encode() in done.stdout
        assert b"FEED_MAX_FRAME_BYTES             default: 16777216" in done.stdout


@pytest.fixture
def one_partition_dlq(pipeline: Pipeline) -> str:
    name = pipeline.dlq_topic + ".one"
    create_topic(pipeline.services, name, 1)
    return name


@pytest.mark.timeout(90)
def test_a_dead_letter_topic_with_one_partition_works(
    pipeline: Pipeline, one_partition_dlq: str
) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=200, count=100, seed=21, malformed_every=20)
    with SimulatorThread(config) as simulator:
        producer = start_service(
            "producer",
            pipeline,
            COINBASE_WS_URL=simulator.url,
            KAFKA_DLQ_TOPIC=one_partition_dlq,
            FEED_CONNECTIONS="1",
        )
        assert simulator.wait_until(lambda s: s.done(), timeout=30)
        time.sleep(0.5)
        code, err = stop_service(producer)
        malformed = simulator.sent_malformed()
    assert code == 0, err
    # The consumer too: a bad record in partition 2 goes to the DLQ's only partition.
    produce(pipeline, [(2, b'{"type":"ticker","product_id":"BTC-EUR","price":"NaN"}')])
    consumer = start_service("consumer", pipeline, KAFKA_DLQ_TOPIC=one_partition_dlq)
    wait_for(lambda: row_count(pipeline) == 300, 30, "the producer's 300 ticks as rows")
    dead = read_all(pipeline.services.bootstrap, one_partition_dlq, 1, timeout_s=20)
    code, err = stop_service(consumer)
    assert code == 0, err
    assert malformed
    values = Counter(message.value() for message in dead)
    assert values == Counter(
        [*malformed, b'{"type":"ticker","product_id":"BTC-EUR","price":"NaN"}']
    )


@pytest.mark.timeout(60)
def test_a_metrics_port_in_use_stops_the_producer_with_one_line(pipeline: Pipeline) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = SimulatorConfig(products=PRODUCTS, rate=10, seed=22)
        with SimulatorThread(config) as simulator:
            process = start_service(
                "producer", pipeline, COINBASE_WS_URL=simulator.url, PRODUCER_METRICS_PORT=str(port)
            )
            process.wait(timeout=30)
    assert process.returncode == 2
    line = fatal_line(service_stderr(process), 2)
    assert line.startswith(f"port {port} is taken (set PRODUCER_METRICS_PORT)"), line
