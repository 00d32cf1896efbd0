"""Consumer backfill benchmark: N ticker frames in Kafka -> rows in empty `order` tables.

    .venv/bin/python -m bench.consumer_backfill --rows 1000000 [--products 3] [--json out.json]

In one run, on the same frames (the simulator's generator, with the producer's headers):

- consumer, INSERT path: `python -m consumer backfill --since earliest` with MYSQL_BULK_LOAD=off;
- consumer, LOAD DATA path: the same with MYSQL_BULK_LOAD=on;
- split: three consumer processes at once, each given a third of the products (one product
  each with the default three) through CONSUMER_PRODUCTS;
- bound: MariaDB's own `LOAD DATA LOCAL INFILE` of exactly the rows the consumer makes,
  in one transaction (only the statement and its commit are timed);
- naive: one INSERT + COMMIT per row, on a sample (`--naive-rows`).

Rows come from each run's `--summary-json` (never from logs), rates from wall time. Client
CPU (psutil, read every 50 ms until exit) and peak RSS (VmHWM), and the CPU of the local
MariaDB and Kafka broker (when ops/services.py runs them) show where the work goes.
Every consumer table must equal the bound's table row for row (checksum).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.report import Process, print_table, service_pid, write_json
from consumer.decode import decode
from consumer.sink.layout import COLUMN_LIST, COLUMN_NAMES, TSV_LINES, Row
from ops import services
from ops.pipeline import (
    APP_PASSWORD,
    APP_USER,
    PRODUCTS,
    Pipeline,
    create_database,
    python_env,
    throwaway_pipeline,
)
from shared.kafka_clients import HEADER_RECEIVED_NS, HEADER_SOURCE, reliable_producer
from shared.settings import CommonSettings
from simulator.frames import ProductState

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("insert", "load_data", "split", "bound", "naive")


@dataclass
class Scratch:
    """This run's throwaway pipeline plus one empty `order` table per phase."""

    pipeline: Pipeline

    def database(self, phase: str) -> str:
        return f"{self.pipeline.database}_{phase}"

    def env(self, phase: str, **extra: str) -> dict[str, str]:
        group = f"{self.pipeline.group_id}-{phase}"
        database = self.database(phase)
        return python_env(self.pipeline.env(MYSQL_DATABASE=database, KAFKA_GROUP_ID=group, **extra))


@contextlib.contextmanager
def scratch_pipeline(products: tuple[str, ...]) -> Iterator[Scratch]:
    with throwaway_pipeline("bench", products) as pipeline:
        scratch = Scratch(pipeline)
        for phase in PHASES:
            create_database(pipeline.services, scratch.database(phase))
        try:
            yield scratch
        finally:
            with pipeline.services.admin() as db, db.cursor() as cursor:
                for phase in PHASES:
                    cursor.execute(f"DROP DATABASE IF EXISTS `{scratch.database(phase)}`")


def preload(scratch: Scratch, rows: int, tsv: Path, naive_rows: int) -> list[Row]:
    """Produce `rows` frames round-robin over the products; write the rows they must become
    (decoded by the consumer's own code) to `tsv`; return the first `naive_rows` rows."""
    settings = CommonSettings(kafka_bootstrap_servers=services.KAFKA_BOOTSTRAP)
    # Idempotent: offsets are 0..n-1 in produce order, as the bound's rows say.
    batching = {"linger.ms": 50, "queue.buffering.max.messages": 1_000_000}
    producer = reliable_producer(settings, **batching)
    products = scratch.pipeline.products
    states = [ProductState(product, seed=7) for product in products]
    offsets = [0] * len(states)
    sample: list[Row] = []
    now_ns = time.time_ns() - rows * 50_000
    with tsv.open("w") as out:
        for n in range(rows):
            partition = n % len(states)
            now_ns += 50_000
            frame = states[partition].next_ticker(now_ns)
            headers: list[tuple[str, str | bytes | None]] = [
                (HEADER_RECEIVED_NS, str(now_ns).encode()),
                (HEADER_SOURCE, b"bench"),
            ]
            key = products[partition].encode()
            while True:
                try:
                    producer.produce(scratch.pipeline.topic, frame, key, partition, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.05)
            row = decode(frame, now_ns, products[partition], partition, offsets[partition])
            assert isinstance(row, dict), row
            offsets[partition] += 1
            out.write(TSV_LINES.render([row]))
            if len(sample) < naive_rows:
                sample.append(row)
    assert producer.flush(120) == 0, "frames left unacknowledged"
    return sample


def service_cpu() -> dict[str, float]:
    """CPU seconds so far of the local MariaDB and broker (none when not run here)."""
    found = {}
    for name in ("mariadb", "kafka"):
        with contextlib.suppress(SystemExit, psutil.Error):
            found[name] = Process(service_pid(name)).cpu_seconds()
    return found


def used(before: dict[str, float], name: str) -> float:
    return service_cpu().get(name, 0.0) - before.get(name, 0.0)


@dataclass
class Phase:
    rows: int
    seconds: float
    client_cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    server_cpu_s: float = 0.0
    broker_cpu_s: float = 0.0
    processes: int = 0

    @property
    def rows_per_s(self) -> int:
        return round(self.rows / self.seconds) if self.seconds > 0 else 0

    def as_dict(self) -> dict[str, Any]:
        per_row = 1e6 / max(self.rows, 1)
        return {
            **asdict(self),
            "rows_per_s": self.rows_per_s,
            "client_cpu_us_per_row": round(self.client_cpu_s * per_row, 2),
            "server_cpu_us_per_row": round(self.server_cpu_s * per_row, 2),
        }


def run_consumers(scratch: Scratch, phase: str, groups: list[str | None], **env: str) -> Phase:
    """`consumer backfill` processes at once (one per CONSUMER_PRODUCTS group), sampled."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{phase}-"))
    started, services_before = time.monotonic(), service_cpu()
    running = []
    for index, group in enumerate(groups):
        extra = {**env, **({"CONSUMER_PRODUCTS": group} if group else {})}
        summary = folder / f"summary-{index}.json"
        command = [sys.executable, "-m", "consumer", "backfill", "--since", "earliest"]
        with (folder / f"{index}.stderr").open("wb") as err:
            process = subprocess.Popen(
                [*command, "--summary-json", str(summary)],
                cwd=ROOT,
                env=scratch.env(phase, **extra),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        running.append((process, Process(process.pid), summary))
    cpu: dict[int, float] = {}
    peak: dict[int, float] = {}
    while any(process.poll() is None for process, _, _ in running):
        for process, watched, _ in running:
            with contextlib.suppress(psutil.Error, OSError):
                cpu[process.pid] = watched.cpu_seconds()  # the last reading before it exits
                peak[process.pid] = max(peak.get(process.pid, 0.0), watched.peak_rss_mb())
        time.sleep(0.05)
    seconds = time.monotonic() - started
    written = 0
    for index, (process, _, summary) in enumerate(running):
        stderr = (folder / f"{index}.stderr").read_text()[-2000:]
        assert process.returncode == 0 and summary.exists(), f"{phase} failed:\n{stderr}"
        written += json.loads(summary.read_text())["total"]["written"]
    return Phase(
        rows=written,
        seconds=seconds,
        client_cpu_s=sum(cpu.values()),
        peak_rss_mb=round(max(peak.values(), default=0), 1),
        server_cpu_s=used(services_before, "mariadb"),
        broker_cpu_s=used(services_before, "kafka"),
        processes=len(running),
    )


def app_connection(database: str, local_infile: bool = False) -> Any:
    import pymysql

    return pymysql.connect(
        host=services.MYSQL_HOST,
        port=services.MYSQL_PORT,
        user=APP_USER,
        password=APP_PASSWORD,
        database=database,
        local_infile=local_infile,
        init_command="SET time_zone = '+00:00'",
    )


def load_data_bound(scratch: Scratch, tsv: Path, rows: int) -> Phase:
    with app_connection(scratch.database("bound"), local_infile=True) as db, db.cursor() as cur:
        before, started = service_cpu(), time.monotonic()
        cur.execute(
            f"LOAD DATA LOCAL INFILE '{tsv}' INTO TABLE `order` CHARACTER SET ascii ({COLUMN_LIST})"
        )
        db.commit()
        seconds = time.monotonic() - started
    return Phase(rows=rows, seconds=seconds, server_cpu_s=used(before, "mariadb"))


def naive(scratch: Scratch, sample: list[Row]) -> Phase:
    """The obvious way: one parameterised INSERT and one COMMIT per row."""
    statement = (
        f"INSERT INTO `order` ({COLUMN_LIST}) VALUES ({', '.join(['%s'] * len(COLUMN_NAMES))})"
    )
    with app_connection(scratch.database("naive")) as db, db.cursor() as cursor:
        started = time.monotonic()
        for row in sample:
            cursor.execute(statement, [row[name] for name in COLUMN_NAMES])
            db.commit()
        return Phase(rows=len(sample), seconds=time.monotonic() - started)


def table_checksum(database: str) -> tuple[int, int]:
    """Row count and an order-free checksum of every column the consumer writes."""
    columns = ", ".join(f"IFNULL(`{name}`, 'null')" for name in COLUMN_NAMES)
    with services.admin_connection(database) as db, db.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*), IFNULL(SUM(CRC32(CONCAT_WS('|', {columns}))), 0) FROM `order`"
        )
        count, checksum = cursor.fetchone() or (0, 0)
    return int(count), int(checksum)


def thirds(products: tuple[str, ...]) -> list[str | None]:
    parts = min(3, len(products))
    return [",".join(products[index::parts]) for index in range(parts)]


def run(rows: int, products: tuple[str, ...], naive_rows: int) -> dict[str, Any]:
    with scratch_pipeline(products) as scratch, tempfile.TemporaryDirectory() as folder:
        tsv = Path(folder) / "rows.tsv"
        say(f"preloading {rows:,} frames over {len(products)} partitions")
        sample = preload(scratch, rows, tsv, naive_rows)
        phases: dict[str, Phase] = {}
        say("bound: LOAD DATA LOCAL INFILE of the same rows")
        phases["load_data"] = load_data_bound(scratch, tsv, rows)
        say("consumer on the INSERT path")
        phases["consumer_insert"] = run_consumers(scratch, "insert", [None], MYSQL_BULK_LOAD="off")
        say("consumer on the LOAD DATA path")
        phases["consumer"] = run_consumers(scratch, "load_data", [None], MYSQL_BULK_LOAD="on")
        say("split: processes with CONSUMER_PRODUCTS, at once, LOAD DATA path")
        split = thirds(products)
        phases["consumer_split"] = run_consumers(scratch, "split", split, MYSQL_BULK_LOAD="on")
        say(f"naive: one INSERT + COMMIT per row, {len(sample):,} rows")
        phases["naive"] = naive(scratch, sample)
        expected = table_checksum(scratch.database("bound"))
        assert expected[0] == rows, f"the bound loaded {expected[0]} rows of {rows}"
        for phase in ("insert", "load_data", "split"):
            found = table_checksum(scratch.database(phase))
            assert found == expected, f"{phase}: table differs from the bound's ({found})"
    bound = phases["load_data"].rows_per_s
    ratios = {
        f"{name}_to_load_data": round(phase.rows_per_s / bound, 3)
        for name, phase in phases.items()
        if name.startswith("consumer")
    }
    ratios["consumer_to_naive"] = round(
        phases["consumer"].rows_per_s / phases["naive"].rows_per_s, 1
    )
    return {
        "rows": rows,
        "products": list(products),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        **{name: phase.as_dict() for name, phase in phases.items()},
        "ratios": ratios,
    }


def print_report(report: dict[str, Any]) -> None:
    bound = report["load_data"]["rows_per_s"]
    names = {
        "consumer_insert": "consumer, INSERT path",
        "consumer": "consumer, LOAD DATA path",
        "consumer_split": "3 processes (CONSUMER_PRODUCTS)",
        "load_data": "LOAD DATA bound",
        "naive": "naive: INSERT + COMMIT per row",
    }
    lines = [
        (
            "",
            f"{'rows/s':>9} {'x bound':>8} {'client us/row':>14} {'peak RSS MB':>12} "
            f"{'MariaDB us/row':>15}",
        )
    ]
    for key, name in names.items():
        phase = report[key]
        lines.append(
            (
                name,
                f"{phase['rows_per_s']:>9,} {phase['rows_per_s'] / bound:>8.2f} "
                f"{phase['client_cpu_us_per_row']:>14.1f} {phase['peak_rss_mb']:>12.0f} "
                f"{phase['server_cpu_us_per_row']:>15.1f}",
            )
        )
    lines.append(("consumer / naive", f"{report['ratios']['consumer_to_naive']:.1f} x"))
    load = report["machine"]["load_average"]
    print_table(
        f"backfill, {report['rows']:,} rows, {len(report['products'])} products "
        f"(load average {load[0]:.1f} on {report['machine']['cpus']} cpus)",
        lines,
    )


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.consumer_backfill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="frames to preload")
    parser.add_argument(
        "--products", default="3", help="a number (synthetic products) or a comma-separated list"
    )
    parser.add_argument("--naive-rows", type=int, default=5000, help="rows of the naive sample")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.products.isdigit():
        count = int(args.products)
        products = PRODUCTS if count == 3 else tuple(f"P{n:03d}-USD" for n in range(count))
    else:
        products = tuple(args.products.split(","))
    report = run(args.rows, products, min(args.naive_rows, args.rows))
    print_report(report)
    if args.json:
        write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
