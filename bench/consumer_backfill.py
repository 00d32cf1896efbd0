"""Consumer backfill benchmark: N ticker frames in Kafka -> rows in an empty `order` table.

    .venv/bin/python -m bench.consumer_backfill --rows 1000000 [--products 12] [--json out.json]

What is measured, all in one run on the same rows (absolute speeds vary between runs on
these machines, so each figure is also given as a ratio to its references):

1. consumer: `python -m consumer backfill --since earliest` as a subprocess, reading a
   fresh topic preloaded with N realistic ticker frames (one partition per product,
   strictly increasing sequences, the producer's headers) into an empty table. Wall time
   from spawn to exit (start-up and preflight included), the process's own CPU seconds
   and peak resident memory (wait4 rusage), rows/s overall, and rows/s per writer thread
   (rows it wrote over its lifetime between its "writer started" and "writer stopped" logs).
2. bound: MariaDB's own `LOAD DATA LOCAL INFILE` of the very rows the consumer writes
   (each frame decoded by `consumer.decode.decode`, written as TSV) into another empty
   copy of the table, in one transaction. Only the statement and its commit are timed:
   this is what the server can ingest when the client costs nothing.
3. naive: one message at a time, decoded, `INSERT` and `COMMIT` (a durable commit per
   row) with PyMySQL, on a sample (`--naive-rows`), into a third empty table.

The backfilled table must hold exactly N rows, equal column by column to the
`LOAD DATA` table (so the bound really loaded the same rows). For each phase the CPU
seconds of the client, of MariaDB and of the Kafka broker (from /proc, when ops/services.py
runs them here) show where the work is; "others" is what the rest of the machine used
meanwhile: a run with large "others" was disturbed and its figures are not to be trusted.
Databases and topics are made fresh for the run and dropped at the end.

`--consumer-command` swaps the consumer's command line (to run it under a profiler); its
default is `{python} -m consumer backfill --since earliest`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pymysql
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from bench.report import Process, write_json
from consumer.decode import COLUMNS, Headers, Rejected, Row, Snapshot, decode
from consumer.sink import INSERT_PREFIX
from ops import services
from shared.kafka_clients import HEADER_RECEIVED_NS, HEADER_SOURCE

ROOT = Path(__file__).resolve().parent.parent
APP_USER = os.environ.get("BENCH_APP_USER", "ticker_writer")  # schema.sql's writer account
APP_PASSWORD = os.environ.get("BENCH_APP_PASSWORD", "ticker_writer")
DEFAULT_PRODUCTS = ("ETH-BTC", "BTC-USD", "BTC-EUR")
DEFAULT_CONSUMER_COMMAND = "{python} -m consumer backfill --since earliest"
CONSUMER_TIMEOUT_S = 1800.0
SOURCE = b"bench"
RecordHeaders = list[tuple[str, str | bytes | None]]  # as confluent-kafka hands them over


# ---------------------------------------------------------------- realistic frames


@dataclass(frozen=True)
class Market:
    """Where a product's synthetic feed starts: price in units of 10**-decimals."""

    product: str
    price: int
    decimals: int


MARKETS = {
    "ETH-BTC": Market("ETH-BTC", 2_381, 5),  # 0.02381
    "BTC-USD": Market("BTC-USD", 8_413_841, 2),  # 84138.41
    "BTC-EUR": Market("BTC-EUR", 7_801_255, 2),  # 78012.55
}


def market_for(product: str, index: int) -> Market:
    """A known market, or a synthetic one with a price between 0.0100 and about 90000.00."""
    if product in MARKETS:
        return MARKETS[product]
    decimals = 2 + 2 * (index % 2)
    return Market(product, (1 + index % 9) * 10 ** (index % 5 + decimals), decimals)


def synthetic_products(count: int) -> tuple[str, ...]:
    return tuple(f"P{number:03d}-USD" for number in range(1, count + 1))


def decimal_text(units: int, digits: int) -> str:
    """`units` * 10**-digits as the feed writes it: fixed digits, no sign, no exponent."""
    whole, fraction = divmod(units, 10**digits)
    return f"{whole}.{fraction:0{digits}d}"


def feed_frames(market: Market, count: int, seed: int, end_us: int) -> Iterator[tuple[bytes, int]]:
    """`count` trade tickers of one product, ending near `end_us`, and their receive times (ns).

    A random walk of the price (reflected at half and double its start) with bid and ask
    next to it, sizes with 8 decimals, running 24h and 30d volumes, strictly increasing
    sequence (with gaps, as on the feed: other channels share it) and trade ids, about 20
    trades a second, 2-20 ms receive latency; keys in Coinbase's order. About 13 us a frame.
    """
    rng = random.Random(seed)
    price, digits, product = market.price, market.decimals, market.product
    open_24h = decimal_text(price, digits)
    floor, ceiling = price // 2, price * 2  # the walk reflects here: prices stay positive
    low, high = price, price
    low_text, high_text = open_24h, open_24h
    volume_24h = rng.randrange(10**11, 10**13)
    volume_30d = volume_24h * 30 + rng.randrange(10**12)
    sequence = rng.randrange(50_000_000_000, 120_000_000_000)
    trade_id = rng.randrange(100_000_000, 900_000_000)
    now_us = end_us - count * 51_200
    second, second_text = -1, ""
    for _ in range(count):
        bits = rng.getrandbits(56)
        step = (bits & 1) - (bits >> 1 & 1)  # -1, 0, 0 or +1 tick: an unbiased walk
        price += step if floor <= price + step <= ceiling else -step
        spread = 1 + (bits >> 4 & 3)
        buy = bits >> 6 & 1
        bid, ask = (price - spread, price) if buy else (price, price + spread)
        last_size = (1 + (bits >> 7 & 0xFFFF)) * 10 ** (bits >> 23 & 3)
        bid_size = (1 + (bits >> 25 & 0x1FFF)) * 10 ** (3 + (bits >> 38 & 1))
        ask_size = (1 + (bits >> 39 & 0x1FFF)) * 10 ** (3 + (bits >> 52 & 1))
        volume_24h += last_size
        volume_30d += last_size
        if price < low:
            low, low_text = price, decimal_text(price, digits)
        elif price > high:
            high, high_text = price, decimal_text(price, digits)
        sequence += 1 + (bits >> 53 & 3)
        trade_id += 1
        now_us += 1 + (bits >> 30 & 0xFF) * 400
        if now_us // 1_000_000 != second:
            second = now_us // 1_000_000
            second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        frame = (
            f'{{"type":"ticker","sequence":{sequence},"product_id":"{product}",'
            f'"price":"{decimal_text(price, digits)}","open_24h":"{open_24h}",'
            f'"volume_24h":"{decimal_text(volume_24h, 8)}","low_24h":"{low_text}",'
            f'"high_24h":"{high_text}","volume_30d":"{decimal_text(volume_30d, 8)}",'
            f'"best_bid":"{decimal_text(bid, digits)}",'
            f'"best_bid_size":"{decimal_text(bid_size, 8)}",'
            f'"best_ask":"{decimal_text(ask, digits)}",'
            f'"best_ask_size":"{decimal_text(ask_size, 8)}",'
            f'"side":"{"buy" if buy else "sell"}",'
            f'"time":"{second_text}.{now_us % 1_000_000:06d}Z",'
            f'"trade_id":{trade_id},"last_size":"{decimal_text(last_size, 8)}"}}'
        )
        yield frame.encode(), (now_us + 2_000 + (bits & 0x3FFF)) * 1000


def split_evenly(total: int, parts: int) -> list[int]:
    share, extra = divmod(total, parts)
    return [share + (1 if index < extra else 0) for index in range(parts)]


# ---------------------------------------------------------------- fresh topic and tables


@dataclass(frozen=True)
class Scratch:
    """This run's private topics and databases (one `order` table each), dropped at the end."""

    products: tuple[str, ...]
    topic: str
    dlq_topic: str
    group_id: str
    backfill_db: str
    load_db: str
    naive_db: str

    @classmethod
    def new(cls, products: tuple[str, ...]) -> Scratch:
        suffix = uuid.uuid4().hex[:8]
        return cls(
            products,
            f"bench.ticker.{suffix}",
            f"bench.ticker.dlq.{suffix}",
            f"bench-backfill-{suffix}",
            f"bench_{suffix}_backfill",
            f"bench_{suffix}_load",
            f"bench_{suffix}_naive",
        )

    @property
    def databases(self) -> tuple[str, str, str]:
        return self.backfill_db, self.load_db, self.naive_db


def admin_connection(database: str | None = None) -> Connection[Cursor]:
    return services.admin_connection(database, autocommit=True)


def app_connection(database: str, local_infile: bool = False) -> Connection[Cursor]:
    """The writer's account and session settings (shared.mysql.connect's), explicit commits."""
    return pymysql.connect(
        host=services.MYSQL_HOST,
        port=services.MYSQL_PORT,
        user=APP_USER,
        password=APP_PASSWORD,
        database=database,
        autocommit=False,
        local_infile=local_infile,
        init_command="SET time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,"
        "NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    )


def create(scratch: Scratch) -> None:
    admin = AdminClient({"bootstrap.servers": services.KAFKA_BOOTSTRAP})
    partitions = len(scratch.products)
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name in (scratch.topic, scratch.dlq_topic)
        ]
    )
    for future in futures.values():
        future.result(timeout=60)
    with admin_connection() as connection, connection.cursor() as cursor:
        for name in scratch.databases:
            cursor.execute(f"CREATE DATABASE `{name}`")
            cursor.execute(f"CREATE TABLE `{name}`.`order` LIKE coinbase.`order`")
            cursor.execute(f"GRANT SELECT, INSERT ON `{name}`.`order` TO '{APP_USER}'@'%'")


def drop(scratch: Scratch) -> None:
    with admin_connection() as connection, connection.cursor() as cursor:
        for name in scratch.databases:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin = AdminClient({"bootstrap.servers": services.KAFKA_BOOTSTRAP})
    for future in admin.delete_topics([scratch.topic, scratch.dlq_topic]).values():
        with contextlib.suppress(Exception):
            future.result(timeout=60)


# ---------------------------------------------------------------- preload


@dataclass
class Sample:
    """Frames kept for the naive run: (frame, headers, product, partition, offset)."""

    quota: int
    records: list[tuple[bytes, Headers, str, int, int]] = field(default_factory=list)


@dataclass
class Preload:
    frames_per_product: dict[str, int]
    seconds: float
    tsv_bytes: int


def bench_producer(failures: list[str]) -> Producer:
    """Idempotent (so offsets are exactly 0..n-1 in produce order), batching hard."""

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(str(error))

    return Producer(
        {
            "bootstrap.servers": services.KAFKA_BOOTSTRAP,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "batch.num.messages": 100_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "on_delivery": delivered,
        }
    )


def send(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes,
    partition: int,
    headers: RecordHeaders,
    timestamp_ms: int,
) -> None:
    while True:
        try:
            producer.produce(
                topic,
                value=value,
                key=key,
                partition=partition,
                headers=headers,
                timestamp=timestamp_ms,
            )
            return
        except BufferError:
            producer.poll(0.05)  # the local queue is full: let deliveries drain it


def tsv_line(row: Row) -> str:
    """One row as LOAD DATA's default format reads it: tab-separated, \\N for NULL."""
    fields = []
    for value in row:
        if value is None:
            fields.append("\\N")
        elif isinstance(value, datetime):
            fields.append(value.isoformat(sep=" ", timespec="microseconds"))
        else:
            fields.append(str(value))
    return "\t".join(fields) + "\n"


def preload(scratch: Scratch, rows: int, tsv: TextIO, sample: Sample) -> Preload:
    """Produce the frames, and write the rows the consumer should make of them as TSV."""
    started = time.perf_counter()
    failures: list[str] = []
    producer = bench_producer(failures)
    end_us = time.time_ns() // 1000
    counts = split_evenly(rows, len(scratch.products))
    keep = split_evenly(sample.quota, len(scratch.products))
    size = 0
    for partition, (product, count) in enumerate(zip(scratch.products, counts, strict=True)):
        key = product.encode()
        market = market_for(product, partition)
        for offset, (frame, received_ns) in enumerate(
            feed_frames(market, count, seed=partition, end_us=end_us)
        ):
            headers: RecordHeaders = [
                (HEADER_RECEIVED_NS, str(received_ns).encode()),
                (HEADER_SOURCE, SOURCE),
            ]
            send(producer, scratch.topic, frame, key, partition, headers, received_ns // 10**6)
            outcome = decode(frame, headers, product, partition, offset)
            if isinstance(outcome, Rejected | Snapshot):
                raise AssertionError(f"generated a frame the consumer rejects: {outcome} {frame!r}")
            size += tsv.write(tsv_line(outcome))
            if offset < keep[partition]:
                sample.records.append((frame, headers, product, partition, offset))
            if offset % 20_000 == 0:
                producer.poll(0)
    left = producer.flush(120)
    if left or failures:
        raise RuntimeError(f"preload: {left} undelivered, {len(failures)} failed: {failures[:3]}")
    check_offsets(scratch, counts)
    tsv.flush()
    return Preload(
        dict(zip(scratch.products, counts, strict=True)), time.perf_counter() - started, size
    )


def check_offsets(scratch: Scratch, counts: list[int]) -> None:
    """Each partition holds offsets 0..count-1: the TSV's kafka_offset values are right."""
    consumer = Consumer({"bootstrap.servers": services.KAFKA_BOOTSTRAP, "group.id": "bench"})
    try:
        for partition, count in enumerate(counts):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(scratch.topic, partition), timeout=30
            )
            if (low, high) != (0, count):
                raise RuntimeError(f"partition {partition} holds {low}..{high}, not 0..{count}")
    finally:
        consumer.close()


# ---------------------------------------------------------------- where the CPU went


def broker_pid() -> int | None:
    """The Kafka broker's PID when ops/services.py started it here."""
    return services.running_pid(services.KAFKA_DIR / "pid", services.KAFKA_MARKER)


def server_pid() -> int | None:
    """MariaDB's PID from its PID file, when this machine can read it (local services)."""
    try:
        with admin_connection() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT @@pid_file")
            found = cursor.fetchone()
        return int(Path(str(found[0]) if found else "").read_text().split()[0])
    except (OSError, ValueError, IndexError, pymysql.MySQLError):
        return None


def process_cpu_s(pid: int | None) -> float | None:
    """utime + stime of a process, from /proc/<pid>/stat; None when unreadable."""
    if pid is None:
        return None
    try:
        return Process(pid).cpu_seconds()
    except OSError:
        return None


def machine_cpu_s() -> tuple[float, float] | None:
    """(busy, iowait) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, iowait, irq, softirq, steal = ticks[:8]
    hertz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / hertz, iowait / hertz


@dataclass
class PhaseUsage:
    """CPU seconds spent during one phase: by MariaDB, Kafka, this process, the machine."""

    server_cpu_s: float | None = None  # None: unreadable, or MariaDB restarted meanwhile
    broker_cpu_s: float | None = None  # the same for the Kafka broker
    bench_cpu_s: float = 0.0  # this process: the client of LOAD DATA and the naive loop
    machine_busy_s: float | None = None  # every process on every CPU
    machine_iowait_s: float | None = None

    def others_s(self, client_cpu_s: float) -> float | None:
        """CPU used by none of client, MariaDB and Kafka: other work disturbing the run."""
        if None in (self.machine_busy_s, self.server_cpu_s, self.broker_cpu_s):
            return None
        used = (self.server_cpu_s or 0) + (self.broker_cpu_s or 0) + client_cpu_s
        return max(0.0, round((self.machine_busy_s or 0) - used, 2))  # ticks are 10 ms


def delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else round(after - before, 2)


@contextlib.contextmanager
def measure(usage: dict[str, PhaseUsage], name: str) -> Iterator[None]:
    pid, broker = server_pid(), broker_pid()
    server, kafka = process_cpu_s(pid), process_cpu_s(broker)
    machine, own = machine_cpu_s(), time.process_time()
    yield
    server_after, kafka_after = process_cpu_s(pid), process_cpu_s(broker)
    machine_after = machine_cpu_s()
    usage[name] = PhaseUsage(
        server_cpu_s=delta(server_after, server) if server_pid() == pid else None,
        broker_cpu_s=delta(kafka_after, kafka) if broker_pid() == broker else None,
        bench_cpu_s=round(time.process_time() - own, 2),
        machine_busy_s=delta(
            machine_after[0] if machine_after else None, machine[0] if machine else None
        ),
        machine_iowait_s=delta(
            machine_after[1] if machine_after else None, machine[1] if machine else None
        ),
    )


# ---------------------------------------------------------------- 1. the consumer


@dataclass
class ConsumerRun:
    wall_s: float
    cpu_s: float
    system_cpu_s: float  # part of cpu_s in the kernel (sockets, futexes of the GIL)
    peak_rss_mb: float
    exit_code: int
    written: dict[str, int]
    thread_seconds: dict[str, float]
    write_phase_s: float | None
    command: list[str]


def consumer_env(scratch: Scratch) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PRODUCTS": ",".join(scratch.products),
        "KAFKA_BOOTSTRAP_SERVERS": services.KAFKA_BOOTSTRAP,
        "KAFKA_TOPIC": scratch.topic,
        "KAFKA_DLQ_TOPIC": scratch.dlq_topic,
        "KAFKA_GROUP_ID": scratch.group_id,
        "MYSQL_HOST": services.MYSQL_HOST,
        "MYSQL_PORT": str(services.MYSQL_PORT),
        "MYSQL_USER": APP_USER,
        "MYSQL_PASSWORD": APP_PASSWORD,
        "MYSQL_DATABASE": scratch.backfill_db,
        "CONSUMER_METRICS_PORT": "0",
        "LOG_FORMAT": "json",
    }


def wait_with_usage(pid: int, timeout_s: float) -> tuple[int, resource.struct_rusage, float]:
    """Reap `pid` with wait4 (its own CPU time); SIGTERM, then SIGKILL, past the timeout.

    Peak memory is polled from /proc (VmHWM) while it runs: wait4's ru_maxrss also counts
    the forked copy of this (large) process from before the child's exec.
    """
    deadline = time.monotonic() + timeout_s
    signals = [signal.SIGKILL, signal.SIGTERM]  # sent in turn, 30 s apart
    watched, peak_rss_mb = Process(pid), 0.0
    while True:
        with contextlib.suppress(OSError):
            peak_rss_mb = max(peak_rss_mb, watched.peak_rss_mb())
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status), usage, peak_rss_mb
        if time.monotonic() > deadline and signals:
            os.kill(pid, signals.pop())
            deadline += 30
        time.sleep(0.01)


def run_consumer(scratch: Scratch, command_template: str, logs: Path) -> ConsumerRun:
    command = shlex.split(command_template.format(python=sys.executable))
    with (logs / "consumer.out").open("wb") as out, (logs / "consumer.err").open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=ROOT, env=consumer_env(scratch), stdout=out, stderr=err
        )
        exit_code, usage, peak_rss_mb = wait_with_usage(process.pid, CONSUMER_TIMEOUT_S)
        wall = time.perf_counter() - started
        process.returncode = exit_code  # reaped by wait4 above
    stdout = (logs / "consumer.out").read_text(errors="replace")
    stderr = (logs / "consumer.err").read_text(errors="replace")
    if exit_code != 0:
        raise RuntimeError(f"consumer exited {exit_code}:\n{stdout}\n{stderr[-4000:]}")
    starts, stops = writer_lifetimes(stderr)
    return ConsumerRun(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        system_cpu_s=usage.ru_stime,
        peak_rss_mb=peak_rss_mb,
        exit_code=exit_code,
        written=summary_written(stdout, scratch.products),
        thread_seconds={
            product: stops[product] - starts[product]
            for product in scratch.products
            if product in starts and product in stops
        },
        write_phase_s=(max(stops.values()) - min(starts.values()) if starts and stops else None),
        command=command,
    )


def summary_written(stdout: str, products: tuple[str, ...]) -> dict[str, int]:
    """Rows written per product, from the backfill's summary table."""
    written = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[0] in products:
            written[parts[0]] = int(parts[2])
    return written


def writer_lifetimes(stderr: str) -> tuple[dict[str, float], dict[str, float]]:
    """Epoch seconds of each writer's "writer started" and "writer stopped" JSON log lines."""
    starts: dict[str, float] = {}
    stops: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        moments = {"writer started": starts, "writer stopped": stops}.get(entry.get("event"))
        if moments is not None and "product" in entry:
            moments[entry["product"]] = datetime.fromisoformat(entry["timestamp"]).timestamp()
    return starts, stops


# ---------------------------------------------------------------- 2. the bound


LOAD_DATA = (
    "LOAD DATA LOCAL INFILE %s IGNORE INTO TABLE `order` CHARACTER SET utf8mb4 "
    "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})"
).format(", ".join(COLUMNS))


def load_data(database: str, tsv: Path) -> tuple[int, float]:
    """LOAD DATA LOCAL of the TSV in one transaction; (rows, seconds) of statement + commit."""
    with app_connection(database, local_infile=True) as connection, connection.cursor() as cursor:
        started = time.perf_counter()
        loaded = cursor.execute(LOAD_DATA, (str(tsv),))
        connection.commit()
        seconds = time.perf_counter() - started
        if cursor.warning_count:
            cursor.execute("SHOW WARNINGS LIMIT 5")
            raise RuntimeError(f"LOAD DATA warnings: {cursor.fetchall()}")
    return loaded, seconds


# ---------------------------------------------------------------- 3. the naive way


def naive(database: str, sample: Sample) -> tuple[int, float]:
    """Each message decoded, inserted and committed on its own; (rows, seconds)."""
    insert = INSERT_PREFIX + "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"  # plain PyMySQL
    with app_connection(database) as connection, connection.cursor() as cursor:
        started = time.perf_counter()
        inserted = 0
        for frame, headers, product, partition, offset in sample.records:
            row = decode(frame, headers, product, partition, offset)
            assert isinstance(row, tuple)
            inserted += cursor.execute(insert, row)
            connection.commit()
        seconds = time.perf_counter() - started
    return inserted, seconds


# ---------------------------------------------------------------- verification


def count_rows(database: str) -> int:
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM `order`")
        found = cursor.fetchone()
    return int(found[0]) if found else 0


def rows_equal(left: str, right: str) -> int:
    """How many rows of `left` have a row in `right` equal in every column the writer sets."""
    same = " AND ".join(f"a.`{name}` <=> b.`{name}`" for name in COLUMNS)
    with admin_connection() as connection, connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM `{left}`.`order` a JOIN `{right}`.`order` b "
            f"USING (product_id, sequence) WHERE {same}"
        )
        found = cursor.fetchone()
    return int(found[0]) if found else 0


# ---------------------------------------------------------------- report


@dataclass
class Report:
    rows: int
    products: list[str]
    machine: dict[str, Any]
    preload_s: float
    consumer: dict[str, Any]
    load_data: dict[str, Any]
    naive: dict[str, Any]
    ratios: dict[str, float]
    per_thread_rows_per_s: dict[str, float]
    cpu_s: dict[str, dict[str, float | None]]  # phase -> client, mariadb, kafka, others, iowait
    verified: dict[str, Any]


def per_thread_rates(run: ConsumerRun, expected: dict[str, int]) -> dict[str, float]:
    """Rows/s of each writer over its own lifetime (or the whole wall time, lacking logs)."""
    return {
        product: round(run.written.get(product, 0) / run.thread_seconds.get(product, run.wall_s))
        for product in expected
    }


def cpu_split(usage: PhaseUsage, client_cpu_s: float) -> dict[str, float | None]:
    return {
        "client": round(client_cpu_s, 2),
        "mariadb": usage.server_cpu_s,
        "kafka": usage.broker_cpu_s,
        "others": usage.others_s(client_cpu_s),
        "iowait": usage.machine_iowait_s,
    }


def build_report(
    rows: int,
    preloaded: Preload,
    run: ConsumerRun,
    loaded: tuple[int, float],
    naive_result: tuple[int, float],
    usage: dict[str, PhaseUsage],
    verified: dict[str, Any],
) -> Report:
    consumer_rate = rows / run.wall_s
    load_rate = loaded[0] / loaded[1]
    naive_rate = naive_result[0] / naive_result[1] if naive_result[0] else float("nan")
    write_phase = run.write_phase_s
    return Report(
        rows=rows,
        products=list(preloaded.frames_per_product),
        machine={
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "mariadb": server_version(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        preload_s=round(preloaded.seconds, 2),
        consumer={
            "rows_per_s": round(consumer_rate),
            "rows_per_s_write_phase": round(rows / write_phase) if write_phase else None,
            "wall_s": round(run.wall_s, 2),
            "write_phase_s": round(write_phase, 2) if write_phase else None,
            "cpu_s": round(run.cpu_s, 2),
            "system_cpu_s": round(run.system_cpu_s, 2),
            "cpu_s_per_100k_rows": round(run.cpu_s / rows * 100_000, 3),
            "peak_rss_mb": round(run.peak_rss_mb, 1),
            "written": run.written,
            "command": run.command,
        },
        load_data={
            "rows": loaded[0],
            "seconds": round(loaded[1], 2),
            "rows_per_s": round(load_rate),
            "tsv_mb": round(preloaded.tsv_bytes / 2**20),
        },
        naive={
            "rows": naive_result[0],
            "seconds": round(naive_result[1], 2),
            "rows_per_s": round(naive_rate),
        },
        ratios={
            "consumer_to_load_data": round(consumer_rate / load_rate, 3),
            "consumer_to_naive": round(consumer_rate / naive_rate, 1),
        },
        per_thread_rows_per_s=per_thread_rates(run, preloaded.frames_per_product),
        cpu_s={
            "consumer": cpu_split(usage["consumer"], run.cpu_s + usage["consumer"].bench_cpu_s),
            "load_data": cpu_split(usage["load_data"], usage["load_data"].bench_cpu_s),
            "naive": cpu_split(usage["naive"], usage["naive"].bench_cpu_s),
        },
        verified=verified,
    )


def server_version() -> str:
    with admin_connection() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        found = cursor.fetchone()
    return str(found[0]) if found else "?"


def print_report(report: Report) -> None:
    consumer, ratios, cpu = report.consumer, report.ratios, report.cpu_s
    print(
        f"\nconsumer backfill: {report.rows:,} rows, {len(report.products)} products, "
        f"{report.machine['cpus']} CPUs, MariaDB {report.machine['mariadb']}"
    )
    print(
        f"{'':<26}{'rows/s':>9}{'vs LOAD DATA':>14}{'vs naive':>10}"
        f"{'CPU s: client':>15}{'MariaDB':>8}{'Kafka':>7}{'others':>7}"
    )
    print(
        f"{'consumer backfill':<26}{consumer['rows_per_s']:>9,}"
        f"{ratios['consumer_to_load_data']:>13.2f}x{ratios['consumer_to_naive']:>9.1f}x"
        f"{cpu_columns(cpu['consumer'])}"
    )
    print(
        f"{'LOAD DATA LOCAL (bound)':<26}{report.load_data['rows_per_s']:>9,}"
        f"{1:>13.2f}x{'':>10}{cpu_columns(cpu['load_data'])}"
    )
    print(
        f"{'naive INSERT+COMMIT':<26}{report.naive['rows_per_s']:>9,}{'':>24}"
        f"{cpu_columns(cpu['naive'])}  ({report.naive['rows']:,} rows)"
    )
    writing = (
        f" (writing {consumer['write_phase_s']} s: {consumer['rows_per_s_write_phase']:,} rows/s)"
        if consumer["write_phase_s"]
        else ""
    )
    print(
        f"consumer: wall {consumer['wall_s']} s{writing}, CPU {consumer['cpu_s']} s "
        f"({consumer['system_cpu_s']} s system) = {consumer['cpu_s_per_100k_rows']} s per "
        f"100k rows, peak RSS {consumer['peak_rss_mb']} MB"
    )
    rates = report.per_thread_rows_per_s
    if len(rates) <= 6:
        shown = ", ".join(f"{product} {rate:,.0f}" for product, rate in rates.items())
    else:
        ordered = sorted(rates.values())
        shown = (
            f"min {ordered[0]:,.0f}, median {ordered[len(ordered) // 2]:,.0f}, "
            f"max {ordered[-1]:,.0f} over {len(ordered)} threads"
        )
    print(f"per thread rows/s: {shown}")
    verified = report.verified
    print(
        f"verified: {verified['rows_in_table']:,} rows in the table (expected "
        f"{report.rows:,}), {verified['equal_to_load_data']:,} equal to the LOAD DATA rows"
    )


def cpu_columns(split: dict[str, float | None]) -> str:
    return "".join(
        f"{fmt(split[name]):>{width}}"
        for name, width in (("client", 15), ("mariadb", 8), ("kafka", 7), ("others", 7))
    )


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.consumer_backfill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="frames to preload")
    parser.add_argument(
        "--products",
        type=int,
        default=None,
        help=f"N synthetic products P001-USD... (default: {DEFAULT_PRODUCTS})",
    )
    parser.add_argument(
        "--naive-rows",
        type=int,
        default=20_000,
        help="sample size for one INSERT + COMMIT per message",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--consumer-command",
        default=DEFAULT_CONSUMER_COMMAND,
        help="the backfill command line; {python} is this interpreter",
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.naive_rows < 1 or (args.products is not None and args.products < 1):
        parser.error("--rows, --naive-rows and --products must be positive")
    return args


def run(rows: int, products: tuple[str, ...], naive_rows: int, command: str) -> Report:
    scratch = Scratch.new(products)
    usage: dict[str, PhaseUsage] = {}
    try:
        create(scratch)
        with tempfile.TemporaryDirectory(prefix="bench-backfill-") as folder:
            work = Path(folder)
            sample = Sample(quota=min(naive_rows, rows))
            tsv_path = work / "rows.tsv"
            with tsv_path.open("w", buffering=1 << 20) as tsv:
                say(f"preloading {rows:,} frames into {scratch.topic} ({len(products)} partitions)")
                preloaded = preload(scratch, rows, tsv, sample)
            say(f"preloaded in {preloaded.seconds:.1f} s; running the consumer's backfill")
            with measure(usage, "consumer"):
                consumer_run = run_consumer(scratch, command, work)
            say(f"backfill took {consumer_run.wall_s:.1f} s; LOAD DATA of the same rows")
            with measure(usage, "load_data"):
                loaded = load_data(scratch.load_db, tsv_path)
            say(f"LOAD DATA took {loaded[1]:.1f} s; naive inserts of {len(sample.records):,} rows")
            with measure(usage, "naive"):
                naive_result = naive(scratch.naive_db, sample)
        say("verifying")
        verified = {
            "rows_in_table": count_rows(scratch.backfill_db),
            "equal_to_load_data": rows_equal(scratch.backfill_db, scratch.load_db),
        }
        if verified["rows_in_table"] != rows or verified["equal_to_load_data"] != rows:
            raise RuntimeError(f"backfill is not exact: {verified} for {rows} frames")
        return build_report(rows, preloaded, consumer_run, loaded, naive_result, usage, verified)
    finally:
        drop(scratch)


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    products = DEFAULT_PRODUCTS if args.products is None else synthetic_products(args.products)
    report = run(args.rows, products, args.naive_rows, args.consumer_command)
    print_report(report)
    result = asdict(report)
    if args.json:
        write_json(args.json, result)
        say(f"results written to {args.json}")
    return result


if __name__ == "__main__":
    main()
