"""The drills themselves: simulator -> producer -> Kafka -> consumer -> MariaDB, a fault,
then the table compared with what the feed sent. `make drill` and the tests run this code;
`size` scales counts and fault durations (1.0 is the full drill, tests use less)."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import orjson
from confluent_kafka import Producer

from ops.pipeline import ROOT, Pipeline
from simulator import SimulatorConfig, SimulatorThread

CATCH_UP_S = 180.0


@dataclass
class Outcome:
    drill: str
    ticks_generated: int  # trade ticks the simulated market made
    ticks_delivered: int  # of those, what reached at least one producer connection
    rows_found: int
    missing: int  # delivered, yet no row: the pipeline lost it
    unexpected: int
    duplicates: int
    dead_letters: int
    missed_by_feed: int  # generated, no row (a tick made while every connection was down)
    recovery_s: float

    @property
    def lost(self) -> int:
        return self.missing + self.unexpected + self.duplicates


def trade_keys(frames_by_product: dict[str, list[bytes]]) -> set[tuple[str, int]]:
    """(product, sequence) of every trade ticker (snapshots are not trades)."""
    keys = set()
    for product, frames in frames_by_product.items():
        for frame in frames:
            ticker = orjson.loads(frame)
            if "trade_id" in ticker:
                keys.add((product, ticker["sequence"]))
    return keys


def wait_until(condition: Callable[[], bool], timeout_s: float = CATCH_UP_S) -> float:
    started = time.monotonic()
    while not condition() and time.monotonic() - started < timeout_s:
        time.sleep(0.2)
    return time.monotonic() - started


@contextmanager
def log_file(pipeline: Pipeline) -> Iterator[IO[bytes]]:
    """Where the services of one drill write (a pipe could fill up and stall them)."""
    folder = ROOT / ".run" / "drills"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{pipeline.topic}.log").open("wb") as logs:
        yield logs


@dataclass
class Run:
    """What a fault acts on: the pipeline, the feed and the running services."""

    pipeline: Pipeline
    simulator: SimulatorThread
    consumer: subprocess.Popen[bytes]
    producer: subprocess.Popen[bytes]
    logs: IO[bytes]
    size: float
    env: dict[str, str]

    def start(self, module: str, **env: str) -> subprocess.Popen[bytes]:
        return self.pipeline.start(module, env=self.env | env, logs=self.logs)


Fault = Callable[[Run], None]


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.wait(60)


def run_drill(
    pipeline: Pipeline,
    name: str,
    config: SimulatorConfig,
    fault: Fault,
    size: float = 1.0,
    planted: Callable[[Pipeline], int] = lambda _pipeline: 0,
    **env: str,
) -> Outcome:
    """Services up on `pipeline`, `fault` applied, everything sent waited for, then counted."""
    with log_file(pipeline) as logs, SimulatorThread(config) as simulator:
        quiet = {"LOG_LEVEL": "WARNING", "COINBASE_WS_URL": simulator.url, **env}
        consumer, producer = (
            pipeline.start(module, env=quiet, logs=logs) for module in ("consumer", "producer")
        )
        run = Run(pipeline, simulator, consumer, producer, logs, size, quiet)
        try:
            bad_records = planted(pipeline)
            fault(run)
            fault_over = time.monotonic()
            simulator.wait_until(lambda s: s.done(), timeout=CATCH_UP_S)
            generated = trade_keys(simulator.sent_tickers())
            delivered = trade_keys(simulator.delivered_tickers())
            wait_until(lambda: pipeline.row_count() >= len(delivered))
            recovery_s = time.monotonic() - fault_over
        finally:
            stop(run.producer)
            stop(run.consumer)
        found = pipeline.keys()
        outcome = Outcome(
            drill=name,
            ticks_generated=len(generated),
            ticks_delivered=len(delivered),
            rows_found=len(found),
            missing=len(delivered - found),
            unexpected=len(found - generated),
            duplicates=pipeline.duplicates(),
            dead_letters=pipeline.dead_letters(),
            missed_by_feed=len(generated - found),
            recovery_s=round(recovery_s, 1),
        )
        expected_dead = len(simulator.sent_malformed()) + bad_records
        assert outcome.dead_letters >= expected_dead, "dead letters went missing"
        return outcome


# ---------------------------------------------------------------- the faults


def kill9_consumer(run: Run) -> None:
    for _ in range(5):
        time.sleep(random.uniform(0.8, 2.0))
        run.consumer.kill()
        run.consumer.wait()
        run.consumer = run.start("consumer")


def take_down(run: Run, service: str, after_s: float, for_s: float) -> None:
    """Stop a local service `after_s` into the run and start it again `for_s` later."""
    time.sleep(after_s)
    run.pipeline.services.control("stop", service)
    try:
        time.sleep(for_s)
    finally:
        run.pipeline.services.control("start", service)


def restart_mariadb(run: Run) -> None:
    take_down(run, "mariadb", 4 * run.size, max(2.0, 5 * run.size))


def stop_broker(run: Run) -> None:
    take_down(run, "kafka", 5 * run.size, max(3.0, 30 * run.size))


def nothing(_run: Run) -> None:
    return


def plant_bad_records(pipeline: Pipeline) -> int:
    """Bad records straight into the topic (what a broken producer could write)."""
    corpus = [
        b"",
        b"{not json",
        b"[]",
        b'{"type":"ticker","product_id":"BTC-USD"}',
        b'{"type":"ticker","sequence":1,"product_id":"BTC-USD","price":"NaN"}',
        b'{"type":"ticker","sequence":2,"product_id":"ETH-BTC"}' + b" " * 70_000,
    ]
    producer = Producer({"bootstrap.servers": pipeline.services.bootstrap})
    for number, value in enumerate(corpus):
        producer.produce(pipeline.topic, value, partition=number % len(pipeline.products))
    producer.flush(30)
    return len(corpus)


# ---------------------------------------------------------------- the drills


def _config(
    pipeline: Pipeline, rate: float, count: float, seed: int, **faults: Any
) -> SimulatorConfig:
    return SimulatorConfig(
        products=pipeline.products, rate=rate, count=max(1, int(count)), seed=seed, **faults
    )


Drill = Callable[[Pipeline, float], Outcome]

DRILLS: dict[str, Drill] = {
    "kill9": lambda p, size: run_drill(
        p,
        "kill -9 consumer x5 during a backlog",
        _config(p, 1500, 15_000 * size, 1),
        kill9_consumer,
        size,
    ),
    "mariadb": lambda p, size: run_drill(
        p, "MariaDB restart mid-stream", _config(p, 100, 1500 * size, 2), restart_mariadb, size
    ),
    "broker": lambda p, size: run_drill(
        p, "Kafka broker down 30 s", _config(p, 100, 5000 * size, 3), stop_broker, size
    ),
    "websocket": lambda p, size: run_drill(
        p,
        "WebSocket dropped every 3 s for 60 s",
        _config(p, 100, 6000 * size, 4, drop_after_seconds=3, drop_code=1001),
        nothing,
        size,
    ),
    "bad_frames": lambda p, size: run_drill(
        p,
        "bad frames (feed and topic)",
        _config(p, 200, 2000 * size, 5, malformed_every=20),
        nothing,
        size,
        plant_bad_records,
    ),
}


def redundancy(pipeline: Pipeline, connections: int, size: float = 1.0) -> Outcome:
    """100 msg/s per product for 30 s, one feed connection dropped every 2 s, with
    FEED_CONNECTIONS=`connections`: `missed_by_feed` counts ticks that never became rows."""
    seconds = 30 * size
    config = _config(pipeline, 100, 100 * seconds, 6, drop_one_every=2.0, drop_code=1001)
    name = f"FEED_CONNECTIONS={connections}, one dropped every 2 s for {seconds:g} s"
    return run_drill(pipeline, name, config, nothing, size, FEED_CONNECTIONS=str(connections))
