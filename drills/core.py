"""The drills themselves: simulator -> producer -> Kafka -> consumer -> MariaDB, a fault,
then the table compared with what the feed sent, row by row and field by field, the
consumer's committed offsets with the topic's end, and both services' exit codes on SIGTERM.
`make drill` and the tests run this code; `size` scales counts and fault durations (1.0 is
the full drill, tests use less)."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from ops.pipeline import ROOT, Pipeline
from shared.models import DECIMAL_FIELDS, parse_feed_time
from simulator import SimulatorConfig, SimulatorThread

CATCH_UP_S = 180.0
KILLS = 5
# The columns a row is checked by, against the frame and the record it came from.
CHECKED_COLUMNS: tuple[str, ...] = (
    "product_id",
    "sequence",
    "trade_id",
    "side",
    "time",
    *DECIMAL_FIELDS,
)
CHECKED_COLUMNS += ("kafka_partition", "kafka_offset")
Key = tuple[str, int]


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
    wrong_rows: int = 0  # a field differs from the frame, or the row names another record
    offsets_behind: int = 0  # records past the consumer's committed offsets once caught up
    unclean_exits: int = 0  # a SIGTERM answered with another code than 0, or a crash
    rows_at_fault: int = 0  # rows when the fault struck (the last kill, a service stopped)
    records: int = 0  # in the topic at the end: whether missing rows ever reached Kafka
    note: str = ""  # how the services met the fault, when they must stop on it

    @property
    def lost(self) -> int:
        return self.missing + self.unexpected + self.duplicates

    @property
    def problems(self) -> int:
        return self.lost + self.wrong_rows + self.offsets_behind + self.unclean_exits


def trades(frames_by_product: dict[str, list[bytes]]) -> dict[Key, bytes]:
    """Every trade ticker (snapshots are not trades) by (product, sequence)."""
    found = {}
    for product, frames in frames_by_product.items():
        for frame in frames:
            ticker = orjson.loads(frame)
            if "trade_id" in ticker:
                found[(product, ticker["sequence"])] = frame
    return found


def expected_row(frame: dict[str, Any], partition: int, offset: int) -> tuple[object, ...]:
    """The row a trade ticker must become, in CHECKED_COLUMNS order."""
    decimals = [None if frame.get(n) is None else Decimal(str(frame[n])) for n in DECIMAL_FIELDS]
    at = parse_feed_time(frame["time"]).replace(tzinfo=None)
    fields = (frame["product_id"], frame["sequence"], frame["trade_id"], frame["side"], at)
    return (*fields, *decimals, partition, offset)


def topic_records(pipeline: Pipeline) -> dict[tuple[int, int], bytes]:
    """Every record of the ticker topic by (partition, offset)."""
    ends = pipeline.end_offsets()
    config = {"bootstrap.servers": pipeline.services.bootstrap, "group.id": "drill-check"}
    reader = Consumer(config | {"enable.auto.commit": False})
    reader.assign([TopicPartition(pipeline.topic, p, 0) for p in range(len(ends))])
    records: dict[tuple[int, int], bytes] = {}
    deadline = time.monotonic() + 60
    while len(records) < sum(ends) and time.monotonic() < deadline:
        for message in reader.consume(10_000, timeout=1):
            if message.error() is None:
                place = (message.partition() or 0, message.offset() or 0)
                records[place] = message.value() or b""
    reader.close()
    return records


def wrong_rows(pipeline: Pipeline, frames: dict[Key, bytes]) -> int:
    """Rows of a sent tick that differ from its frame in any field, or whose partition and
    offset do not hold exactly that frame."""
    records, wrong = topic_records(pipeline), 0
    for row in pipeline.rows(f"SELECT {', '.join(CHECKED_COLUMNS)} FROM `order`"):
        frame = frames.get((str(row[0]), int(row[1])))
        if frame is None:
            continue  # counted as unexpected
        partition, offset = pipeline.products.index(str(row[0])), int(row[-1])
        expected = expected_row(orjson.loads(frame), partition, offset)
        wrong += tuple(row) != expected or records.get((int(row[-2]), offset)) != frame
    return wrong


def offsets_behind(pipeline: Pipeline) -> int:
    ends, committed = pipeline.end_offsets(), pipeline.committed_offsets()
    return sum(max(0, end - max(done, 0)) for end, done in zip(ends, committed, strict=True))


def wait_until(
    condition: Callable[[], bool], timeout_s: float = CATCH_UP_S, every_s: float = 0.2
) -> float:
    started = time.monotonic()
    while not condition() and time.monotonic() - started < timeout_s:
        time.sleep(every_s)
    return time.monotonic() - started


def log_path(pipeline: Pipeline) -> Path:
    """Where the services of one drill write (a pipe could fill up and stall them)."""
    return ROOT / ".run" / "drills" / f"{pipeline.topic}.log"


@contextmanager
def log_file(pipeline: Pipeline) -> Iterator[IO[bytes]]:
    log_path(pipeline).parent.mkdir(parents=True, exist_ok=True)
    with log_path(pipeline).open("wb") as logs:
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
    ticks: int  # trade ticks the feed will make
    rows_at_fault: int = 0
    crashes: int = 0  # the consumer had exited on its own when a fault came for it
    fault_note: str = ""  # how the services met a fault they cannot ride out

    def start(self, module: str, **env: str) -> subprocess.Popen[bytes]:
        return self.pipeline.start(module, env=self.env | env, logs=self.logs)


Fault = Callable[[Run], None]


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM (unless it has exited) and its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(60)


def run_drill(
    pipeline: Pipeline,
    name: str,
    config: SimulatorConfig,
    fault: Fault,
    size: float = 1.0,
    planted: Callable[[Pipeline], int] = lambda _pipeline: 0,
    **env: str,
) -> Outcome:
    """Services up on `pipeline`, `fault` applied, everything sent waited for, the producer
    stopped, the consumer's offsets waited for, the consumer stopped, then counted."""
    with log_file(pipeline) as logs, SimulatorThread(config) as simulator:
        quiet = {"LOG_LEVEL": "WARNING", "COINBASE_WS_URL": simulator.url, **env}
        consumer, producer = (
            pipeline.start(module, env=quiet, logs=logs) for module in ("consumer", "producer")
        )
        ticks = (config.count or 0) * len(pipeline.products)
        run = Run(pipeline, simulator, consumer, producer, logs, size, quiet, ticks)
        try:
            bad_records = planted(pipeline)
            fault(run)
            fault_over = time.monotonic()
            simulator.wait_until(lambda s: s.done(), timeout=CATCH_UP_S)
            generated = trades(simulator.sent_tickers())
            delivered = trades(simulator.delivered_tickers())
            wait_until(lambda: pipeline.row_count() >= len(delivered))
            recovery_s = time.monotonic() - fault_over
            codes = [stop(run.producer)]
            wait_until(lambda: offsets_behind(pipeline) == 0, timeout_s=60)
            behind = offsets_behind(pipeline)  # while the consumer still runs
            codes.append(stop(run.consumer))
        finally:
            stop(run.producer)
            stop(run.consumer)
        found = pipeline.keys()
        outcome = Outcome(
            drill=name,
            ticks_generated=len(generated),
            ticks_delivered=len(delivered),
            rows_found=len(found),
            missing=len(delivered.keys() - found),
            unexpected=len(found - generated.keys()),
            duplicates=pipeline.duplicates(),
            dead_letters=pipeline.dead_letters(),
            missed_by_feed=len(generated.keys() - found),
            recovery_s=round(recovery_s, 1),
            wrong_rows=wrong_rows(pipeline, generated),
            offsets_behind=behind,
            unclean_exits=sum(code != 0 for code in codes) + run.crashes,
            rows_at_fault=run.rows_at_fault,
            records=sum(pipeline.end_offsets()),
            note=run.fault_note,
        )
        expected_dead = len(simulator.sent_malformed()) + bad_records
        assert outcome.dead_letters >= expected_dead, "dead letters went missing"
        return outcome


# ---------------------------------------------------------------- the faults


def kill9_consumer(run: Run) -> None:
    """kill -9 the consumer KILLS times, restarting it each time: each run writes a random
    share of what is left of the first four fifths of the feed, then dies anywhere in a batch
    (poll, write, commit)."""
    last_kill_by = run.ticks * 4 // 5  # some backlog is left after the last kill
    for kill in range(KILLS):
        written = run.pipeline.row_count()
        share = random.randint(1, max(1, (last_kill_by - written) // (KILLS - kill)))
        # A feed too short for five restarts (a small --size) gets the late kills at once.
        target = min(written + share, last_kill_by)

        def reached(target: int = target) -> bool:
            return run.pipeline.row_count() >= target or run.consumer.poll() is not None

        wait_until(reached, every_s=0.02)
        time.sleep(random.uniform(0, 0.03))
        run.crashes += run.consumer.poll() is not None
        run.rows_at_fault = run.pipeline.row_count()
        run.consumer.kill()
        run.consumer.wait()
        run.consumer = run.start("consumer")


def take_down(run: Run, service: str, after_s: float, for_s: float) -> None:
    """Stop a local service `after_s` after the first rows arrive and start it again `for_s`
    later; the consumer must ride it out. The rows counted as it goes down (fewer than were
    delivered) show that the stream was still flowing. Counted once it is back, they would
    race the catch-up: clients reconnect while the broker is still reporting ready."""
    wait_until(lambda: run.pipeline.row_count() > 0)
    time.sleep(after_s)
    run.rows_at_fault = run.pipeline.row_count()
    run.pipeline.services.control("stop", service)
    try:
        time.sleep(for_s)
        run.crashes += run.consumer.poll() is not None
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
        BATCH_MAX_ROWS="500",  # more commit points to die between
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
