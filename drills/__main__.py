"""`make drill`: reliability drills on the whole pipeline, and what each one lost (must be nothing).

    .venv/bin/python -m drills [--only kill9,mariadb,broker,websocket,bad_frames] [--json out]

Each drill runs simulator -> producer -> Kafka -> consumer -> MariaDB on fresh topics and a
fresh database (services from ops/services.py, which the broker and database drills stop
and start), applies its fault, waits for the table to catch up, and compares the table
with every trade ticker the simulator sent:

- kill9: kill -9 the consumer 5 times during a backlog, restarting it each time;
- mariadb: restart MariaDB mid-stream;
- broker: stop the Kafka broker for 30 s while the producer reads;
- websocket: the simulator drops the connection every 3 s for a minute;
- bad_frames: malformed frames from the feed plus a corpus of bad records in the topic.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.report import write_json
from ops import services
from simulator import SimulatorConfig, SimulatorThread

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS = ("ETH-BTC", "BTC-USD", "BTC-EUR")
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
CATCH_UP_S = 180.0


@dataclass
class Outcome:
    drill: str
    frames_sent: int
    rows_expected: int
    rows_found: int
    missing: int
    unexpected: int
    duplicates: int
    dead_letters: int
    recovery_s: float

    @property
    def lost(self) -> int:
        return self.missing + self.unexpected + self.duplicates


class Pipeline:
    """Fresh topics, database and group; the services running against them."""

    def __init__(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.topic, self.database = f"drill.{suffix}", f"drill_{suffix}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PRODUCTS": ",".join(PRODUCTS),
            "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
            "KAFKA_TOPIC": self.topic,
            "KAFKA_DLQ_TOPIC": self.topic + ".dlq",
            "KAFKA_GROUP_ID": f"drill-{suffix}",
            "MYSQL_DATABASE": self.database,
            "MYSQL_USER": "ticker_writer",
            "MYSQL_PASSWORD": "ticker_writer",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            "PRODUCER_METRICS_PORT": "0",
            "CONSUMER_METRICS_PORT": "0",
        }
        log_folder = ROOT / ".run" / "drills"
        log_folder.mkdir(parents=True, exist_ok=True)
        self.logs = (log_folder / f"{self.topic}.log").open("wb")  # closed in close()

    def create(self) -> None:
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
        topics = [
            NewTopic(name, num_partitions=3, replication_factor=1)
            for name in (self.topic, self.topic + ".dlq")
        ]
        for future in admin.create_topics(topics).values():
            future.result(30)
        with admin_db() as cursor:
            cursor.execute(f"CREATE DATABASE `{self.database}`")
            cursor.execute(f"CREATE TABLE `{self.database}`.`order` LIKE coinbase.`order`")
            cursor.execute(
                f"GRANT SELECT, INSERT ON `{self.database}`.`order` TO 'ticker_writer'@'%'"
            )

    def close(self) -> None:
        self.logs.close()
        with admin_db() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
        for future in admin.delete_topics([self.topic, self.topic + ".dlq"]).values():
            future.result(30)

    def start(self, module: str, url: str = "") -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env=self.env | {"COINBASE_WS_URL": url or "ws://unused"},
            stdout=self.logs,
            stderr=self.logs,
        )

    def rows(self) -> set[tuple[str, int]]:
        with admin_db(self.database) as cursor:
            cursor.execute("SELECT product_id, sequence FROM `order`")
            return {(str(product), int(sequence)) for product, sequence in cursor.fetchall()}

    def row_count(self) -> int:
        with admin_db(self.database) as cursor:
            cursor.execute("SELECT COUNT(*) FROM `order`")
            (count,) = cursor.fetchone() or (0,)
            return int(count)

    def dead_letters(self) -> int:
        consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "drill-reader"})
        try:
            return sum(
                consumer.get_watermark_offsets(
                    TopicPartition(self.topic + ".dlq", partition), timeout=10
                )[1]
                for partition in range(3)
            )
        finally:
            consumer.close()


@contextmanager
def admin_db(database: str | None = None) -> Iterator[Any]:
    connection = services.admin_connection(database, autocommit=True)
    with connection, connection.cursor() as cursor:
        yield cursor


def service(command: str, name: str) -> None:
    subprocess.run(
        [sys.executable, "ops/services.py", command, name],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.wait(60)


def sent_keys(simulator: SimulatorThread) -> set[tuple[str, int]]:
    """(product, sequence) of every trade ticker sent (snapshots are not trades)."""
    keys = set()
    for product, frames in simulator.sent_tickers().items():
        for frame in frames:
            ticker = orjson.loads(frame)
            if "trade_id" in ticker:
                keys.add((product, ticker["sequence"]))
    return keys


def wait_until(condition: Callable[[], bool], timeout_s: float = CATCH_UP_S) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def run_drill(
    name: str,
    config: SimulatorConfig,
    fault: Callable[[Pipeline, SimulatorThread, list[subprocess.Popen[bytes]]], None],
    extra_dead_letters: Callable[[Pipeline], int] = lambda _pipeline: 0,
) -> Outcome:
    """Pipeline up, `fault` applied, everything sent waited for, then counted."""
    pipeline = Pipeline()
    pipeline.create()
    try:
        with SimulatorThread(config) as simulator:
            processes = [pipeline.start("consumer"), pipeline.start("producer", simulator.url)]
            planted = extra_dead_letters(pipeline)
            fault(pipeline, simulator, processes)
            fault_over = time.monotonic()
            simulator.wait_until(lambda s: s.done(), timeout=CATCH_UP_S)
            expected = sent_keys(simulator)
            wait_until(lambda: pipeline.row_count() >= len(expected))
            recovery_s = time.monotonic() - fault_over
            for process in reversed(processes):
                stop(process)
            found = pipeline.rows()
            with admin_db(pipeline.database) as cursor:
                cursor.execute(
                    "SELECT COUNT(*) - COUNT(DISTINCT product_id, sequence) FROM `order`"
                )
                (duplicates,) = cursor.fetchone() or (0,)
            malformed = len(simulator.sent_malformed())
            outcome = Outcome(
                drill=name,
                frames_sent=sum(simulator.ticker_counts().values()),
                rows_expected=len(expected),
                rows_found=len(found),
                missing=len(expected - found),
                unexpected=len(found - expected),
                duplicates=int(duplicates),
                dead_letters=pipeline.dead_letters(),
                recovery_s=round(recovery_s, 1),
            )
            assert outcome.dead_letters >= malformed + planted, "dead letters went missing"
            return outcome
    finally:
        pipeline.close()


# ---------------------------------------------------------------- the faults


def kill9_consumer(
    pipeline: Pipeline, _sim: SimulatorThread, processes: list[subprocess.Popen[bytes]]
) -> None:
    for _ in range(5):
        time.sleep(random.uniform(0.8, 2.0))
        processes[0].kill()
        processes[0].wait()
        processes[0] = pipeline.start("consumer")


def restart_mariadb(
    _pipeline: Pipeline, _sim: SimulatorThread, _processes: list[subprocess.Popen[bytes]]
) -> None:
    time.sleep(4)
    service("stop", "mariadb")
    time.sleep(5)
    service("start", "mariadb")


def stop_broker(
    _pipeline: Pipeline, _sim: SimulatorThread, _processes: list[subprocess.Popen[bytes]]
) -> None:
    time.sleep(5)
    service("stop", "kafka")
    try:
        time.sleep(30)
    finally:
        service("start", "kafka")


def nothing(
    _pipeline: Pipeline, _sim: SimulatorThread, _processes: list[subprocess.Popen[bytes]]
) -> None:
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
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    for number, value in enumerate(corpus):
        producer.produce(pipeline.topic, value, partition=number % 3)
    producer.flush(30)
    return len(corpus)


DRILLS: dict[str, Callable[[], Outcome]] = {
    "kill9": lambda: run_drill(
        "kill -9 consumer x5 during a backlog",
        SimulatorConfig(products=PRODUCTS, rate=1500, count=15_000, seed=1),
        kill9_consumer,
    ),
    "mariadb": lambda: run_drill(
        "MariaDB restart mid-stream",
        SimulatorConfig(products=PRODUCTS, rate=100, count=1500, seed=2),
        restart_mariadb,
    ),
    "broker": lambda: run_drill(
        "Kafka broker down 30 s",
        SimulatorConfig(products=PRODUCTS, rate=100, count=5000, seed=3),
        stop_broker,
    ),
    "websocket": lambda: run_drill(
        "WebSocket dropped every 3 s for 60 s",
        SimulatorConfig(
            products=PRODUCTS, rate=100, count=6000, seed=4, drop_after_seconds=3, drop_code=1001
        ),
        nothing,
    ),
    "bad_frames": lambda: run_drill(
        "bad frames (feed and topic)",
        SimulatorConfig(products=PRODUCTS, rate=200, count=2000, seed=5, malformed_every=20),
        nothing,
        plant_bad_records,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drills",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", default=",".join(DRILLS))
    parser.add_argument("--json", type=Path, default=Path("bench/results/drills.json"))
    args = parser.parse_args(argv)
    outcomes = []
    for key in args.only.split(","):
        print(f"[drill] {key} ...", flush=True)
        outcomes.append(DRILLS[key]())
    header = (
        "drill",
        "frames sent",
        "rows expected",
        "rows found",
        "missing+extra",
        "duplicates",
        "dead letters",
        "recovery s",
    )
    print("\n" + " | ".join(header))
    for outcome in outcomes:
        print(
            " | ".join(
                str(value)
                for value in (
                    outcome.drill,
                    outcome.frames_sent,
                    outcome.rows_expected,
                    outcome.rows_found,
                    outcome.missing + outcome.unexpected,
                    outcome.duplicates,
                    outcome.dead_letters,
                    outcome.recovery_s,
                )
            )
        )
    write_json(args.json, {"drills": [asdict(outcome) for outcome in outcomes]})
    lost = sum(outcome.lost for outcome in outcomes)
    print(f"\nlost or duplicated: {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
