"""Consumer backfill benchmark: N ticker frames in Kafka -> rows in empty `order` tables.

On the same frames (the simulator's generator, with the producer's headers), one phase
after the other, each into its own empty copy of `order`, which must then equal the bound's:
the consumer (`python -m consumer backfill --since earliest`) on the INSERT path
(MYSQL_BULK_LOAD=off), on the LOAD DATA path (=on), and as three processes at once with a
third of the products each (CONSUMER_PRODUCTS); the bound, MariaDB's own LOAD DATA LOCAL
INFILE of exactly the consumer's rows in one transaction; and the naive way, one INSERT +
COMMIT per row, on a sample. Rows come from each run's `--summary-json`; client CPU and
peak RSS from psutil, and the CPU of the local MariaDB and broker.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from bench.report import Process, parser, print_table, say, service_cpu, write_json
from consumer.decode import Headers, decode
from consumer.sink.layout import COLUMN_LIST, COLUMN_NAMES, TSV_LINES, Row
from ops.pipeline import PRODUCTS, Pipeline, create_database, throwaway_pipeline
from shared.kafka_clients import HEADER_RECEIVED_NS, HEADER_SOURCE, reliable_producer
from shared.settings import CommonSettings
from simulator.frames import ProductState


def preload(pipeline: Pipeline, rows: int, tsv: Path, naive_rows: int) -> list[Row]:
    """Produce `rows` frames round-robin over the products; write the rows they must become
    (decoded by the consumer's own code) to `tsv`; return the first `naive_rows` rows."""
    settings = CommonSettings(kafka_bootstrap_servers=pipeline.services.bootstrap)
    # Idempotent: offsets are 0..n-1 in produce order, as the bound's rows say.
    producer = reliable_producer(
        settings, **{"linger.ms": 50, "queue.buffering.max.messages": 10**6}
    )
    products = pipeline.products
    states = [ProductState(product, seed=7) for product in products]
    offsets = [0] * len(states)
    sample: list[Row] = []
    now_ns = time.time_ns() - rows * 50_000
    with tsv.open("w") as out:
        for n in range(rows):
            partition = n % len(states)
            now_ns += 50_000
            frame = states[partition].next_ticker(now_ns)
            headers: Headers = {HEADER_RECEIVED_NS: str(now_ns).encode(), HEADER_SOURCE: b"bench"}
            key = products[partition].encode()
            while True:
                try:
                    producer.produce(pipeline.topic, frame, key, partition, headers=headers)
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


def figures(rows: int, seconds: float, client_cpu_s: float = 0.0, **more: float) -> dict[str, Any]:
    """One phase's figures: rows/s, and CPU per row of the client and of MariaDB."""
    found = {"peak_rss_mb": 0.0, "server_cpu_s": 0.0, "broker_cpu_s": 0.0, "processes": 0} | more
    return found | {
        "rows": rows,
        "seconds": seconds,
        "client_cpu_s": client_cpu_s,
        "rows_per_s": round(rows / seconds) if seconds > 0 else 0,
        "client_cpu_us_per_row": round(client_cpu_s * 1e6 / max(rows, 1), 2),
        "server_cpu_us_per_row": round(found["server_cpu_s"] * 1e6 / max(rows, 1), 2),
    }


def run_consumers(
    pipeline: Pipeline, phase: str, groups: list[str], bulk_load: str
) -> dict[str, Any]:
    """`consumer backfill` processes at once (one per CONSUMER_PRODUCTS group), sampled."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{phase}-"))
    started, services_before = time.monotonic(), service_cpu()
    running = []
    for index, group in enumerate(groups):
        env = {"CONSUMER_PRODUCTS": group, "MYSQL_BULK_LOAD": bulk_load}
        env["KAFKA_GROUP_ID"] = f"{pipeline.group_id}-{phase}"
        summary, log = folder / f"summary-{index}.json", folder / f"{index}.log"
        with log.open("wb") as logs:
            args = ("backfill", "--since", "earliest", "--summary-json", str(summary))
            process = pipeline.start("consumer", *args, env=env, logs=logs)
        running.append((process, Process(process.pid), summary, log))
    cpu: dict[int, float] = {}
    peak: dict[int, float] = {}
    while any(process.poll() is None for process, *_ in running):
        for process, watched, *_ in running:
            with contextlib.suppress(psutil.Error, OSError):  # it has just exited
                cpu[process.pid] = watched.cpu_seconds()  # the last reading before it exits
                peak[process.pid] = max(peak.get(process.pid, 0.0), watched.peak_rss_mb())
        time.sleep(0.05)
    seconds, services = time.monotonic() - started, service_cpu()
    written = 0
    for process, _, summary, log in running:
        tail = log.read_text()[-2000:]
        assert process.returncode == 0 and summary.exists(), f"{phase} failed:\n{tail}"
        written += json.loads(summary.read_text())["total"]["written"]
    return figures(
        written,
        seconds,
        sum(cpu.values()),
        server_cpu_s=services.get("mariadb", 0.0) - services_before.get("mariadb", 0.0),
        peak_rss_mb=round(max(peak.values(), default=0), 1),
        broker_cpu_s=services.get("kafka", 0.0) - services_before.get("kafka", 0.0),
        processes=len(running),
    )


def load_data_bound(pipeline: Pipeline, tsv: Path, rows: int) -> dict[str, Any]:
    """MariaDB's own LOAD DATA of the consumer's rows, one transaction: statement and commit."""
    statement = f"LOAD DATA LOCAL INFILE '{tsv}' INTO TABLE `order` CHARACTER SET ascii"
    with pipeline.services.admin(pipeline.database, local_infile=True, autocommit=False) as db:
        before, started = service_cpu(), time.monotonic()
        db.cursor().execute(f"{statement} ({COLUMN_LIST})")
        db.commit()
        seconds = time.monotonic() - started
    server_cpu_s = service_cpu().get("mariadb", 0.0) - before.get("mariadb", 0.0)
    return figures(rows, seconds, server_cpu_s=server_cpu_s)


def naive(pipeline: Pipeline, sample: list[Row]) -> dict[str, Any]:
    """The obvious way: one parameterised INSERT and one COMMIT per row."""
    values = ", ".join(["%s"] * len(COLUMN_NAMES))
    statement = f"INSERT INTO `order` ({COLUMN_LIST}) VALUES ({values})"
    with pipeline.services.admin(pipeline.database, autocommit=False) as db, db.cursor() as cur:
        started = time.monotonic()
        for row in sample:
            cur.execute(statement, [row[name] for name in COLUMN_NAMES])
            db.commit()
        return figures(len(sample), time.monotonic() - started)


def checksum(pipeline: Pipeline) -> tuple[int, int]:
    """Row count and an order-free checksum of every column the consumer writes."""
    columns = ", ".join(f"IFNULL(`{name}`, 'null')" for name in COLUMN_NAMES)
    total = f"IFNULL(SUM(CRC32(CONCAT_WS('|', {columns}))), 0)"
    ((count, found),) = pipeline.rows(f"SELECT COUNT(*), {total} FROM `order`")
    return int(count), int(found)


@contextlib.contextmanager
def phase_tables(pipeline: Pipeline) -> Iterator[dict[str, Pipeline]]:
    """`pipeline` pointed at a fresh database of its own for each phase; dropped afterwards."""
    phases = ("bound", "insert", "load_data", "split", "naive")
    tables = {phase: replace(pipeline, database=f"{pipeline.database}_{phase}") for phase in phases}
    try:
        for table in tables.values():
            create_database(pipeline.services, table.database)
        yield tables
    finally:
        for table in tables.values():
            pipeline.rows(f"DROP DATABASE IF EXISTS `{table.database}`")


def run(rows: int, products: tuple[str, ...], naive_rows: int) -> dict[str, Any]:
    """Every phase on the same frames, one after the other."""
    parts = min(3, len(products))
    split = [",".join(products[index::parts]) for index in range(parts)]
    with (
        throwaway_pipeline("bench", products) as pipeline,
        phase_tables(pipeline) as table,
        tempfile.TemporaryDirectory() as tmp,
    ):
        tsv = Path(tmp) / "rows.tsv"
        say(f"preloading {rows:,} frames over {len(products)} partitions")
        sample = preload(pipeline, rows, tsv, naive_rows)
        say("bound: LOAD DATA LOCAL INFILE of the same rows")
        phases = {"load_data": load_data_bound(table["bound"], tsv, rows)}
        expected = checksum(table["bound"])
        assert expected[0] == rows, f"the bound loaded {expected[0]} rows of {rows}"
        for name, phase, groups, bulk_load, what in (
            ("consumer_insert", "insert", [",".join(products)], "off", "the INSERT path"),
            ("consumer", "load_data", [",".join(products)], "on", "the LOAD DATA path"),
            ("consumer_split", "split", split, "on", "processes with CONSUMER_PRODUCTS, at once"),
        ):
            say(f"consumer on {what}")
            phases[name] = run_consumers(table[phase], phase, groups, bulk_load)
            found = checksum(table[phase])
            assert found == expected, f"{phase}: table differs from the bound's ({found})"
        say(f"naive: one INSERT + COMMIT per row, {len(sample):,} rows")
        phases["naive"] = naive(table["naive"], sample)
    rate = {name: found["rows_per_s"] for name, found in phases.items()}
    ratios = {
        f"{name}_to_load_data": round(rate[name] / rate["load_data"], 3)
        for name in ("consumer_insert", "consumer", "consumer_split")
    }
    ratios["consumer_to_naive"] = round(rate["consumer"] / rate["naive"], 1)
    return {
        "rows": rows,
        "products": list(products),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        **phases,
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
    header = f"{'rows/s':>9} {'x bound':>8} {'client us/row':>14} {'peak RSS MB':>12}"
    lines = [("", f"{header} {'MariaDB us/row':>15}")]
    for key, name in names.items():
        phase = report[key]
        figures = f"{phase['rows_per_s']:>9,} {phase['rows_per_s'] / bound:>8.2f}"
        figures += f" {phase['client_cpu_us_per_row']:>14.1f} {phase['peak_rss_mb']:>12.0f}"
        lines.append((name, f"{figures} {phase['server_cpu_us_per_row']:>15.1f}"))
    lines.append(("consumer / naive", f"{report['ratios']['consumer_to_naive']:.1f} x"))
    load, cpus = report["machine"]["load_average"][0], report["machine"]["cpus"]
    title = f"backfill, {report['rows']:,} rows, {len(report['products'])} products"
    print_table(f"{title} (load average {load:.1f} on {cpus} cpus)", lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    arguments = parser(__doc__, "bench.consumer_backfill")
    arguments.add_argument("--json", type=Path, help="write the results here")
    arguments.add_argument("--rows", type=int, default=1_000_000, help="frames to preload")
    arguments.add_argument("--products", default="3", help="a count or a comma-separated list")
    arguments.add_argument("--naive-rows", type=int, default=5000, help="naive sample rows")
    args = arguments.parse_args(argv)
    if args.products.isdigit():
        count = int(args.products)
        products = PRODUCTS if count == 3 else tuple(f"P{n:03d}-USD" for n in range(count))
    else:
        products = tuple(args.products.split(","))
    report = run(args.rows, products, min(args.naive_rows, args.rows))
    print_report(report)
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
