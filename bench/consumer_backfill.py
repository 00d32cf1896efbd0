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

from bench import report
from consumer.decode import decode
from consumer.sink.layout import COLUMN_LIST, COLUMN_NAMES, TSV_LINES, Row
from ops import services
from ops.pipeline import PRODUCTS, Pipeline, create_database, throwaway_pipeline
from simulator.frames import ProductState

LOAD_DATA = f"LOAD DATA LOCAL INFILE %s INTO TABLE `order` CHARACTER SET ascii ({COLUMN_LIST})"
INSERT = f"INSERT INTO `order` ({COLUMN_LIST}) VALUES ({', '.join(['%s'] * len(COLUMN_NAMES))})"


def preload(pipeline: Pipeline, rows: int, tsv: Path, naive_rows: int) -> list[Row]:
    """Produce `rows` frames round-robin over the products; write the rows they must become
    (decoded by the consumer's own code) to `tsv`; return the first `naive_rows` rows."""
    products = pipeline.products
    states = [ProductState(product, seed=7) for product in products]
    offsets, sample = [0] * len(states), list[Row]()
    now_ns = time.time_ns() - rows * 50_000
    faster: dict[str, Any] = {"linger.ms": 50}  # idempotent: offsets 0..n-1 as the rows say
    with tsv.open("w") as out, pipeline.producing(source="bench", **faster) as send:
        for n in range(rows):
            partition, now_ns = n % len(states), now_ns + 50_000
            frame = states[partition].next_ticker(now_ns)
            send(partition, now_ns, frame)
            row = decode(frame, now_ns, products[partition], partition, offsets[partition])
            assert isinstance(row, dict), row
            offsets[partition] += 1
            out.write(TSV_LINES.render([row]))
            if len(sample) < naive_rows:
                sample.append(row)
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
    env = {"MYSQL_BULK_LOAD": bulk_load, "KAFKA_GROUP_ID": f"{pipeline.group_id}-{phase}"}
    meter, running = report.Meter(services.local_pids()), []
    for index, group in enumerate(groups):
        summary, log = folder / f"summary-{index}.json", folder / f"{index}.log"
        args = ("backfill", "--since", "earliest", "--summary-json", str(summary))
        with log.open("wb") as logs:
            env["CONSUMER_PRODUCTS"] = group
            running.append((pipeline.start("consumer", *args, env=env, logs=logs), summary, log))
    cpu: dict[int, float] = {}  # the last reading before each exits
    peak: dict[int, float] = {}
    while any(process.poll() is None for process, _, _ in running):
        for process, _, _ in running:
            with contextlib.suppress(psutil.Error, OSError):  # it has just exited
                cpu[process.pid] = report.cpu_seconds(process.pid)
                peak[process.pid] = max(peak.get(process.pid, 0), report.peak_rss_mb(process.pid))
        time.sleep(0.05)
    seconds, used = meter.read()
    for process, summary, log in running:
        tail = log.read_text()[-2000:]
        assert process.returncode == 0 and summary.exists(), f"{phase} failed:\n{tail}"
    written = sum(json.loads(summary.read_text())["total"]["written"] for _, summary, _ in running)
    return figures(
        written,
        seconds,
        sum(cpu.values()),
        server_cpu_s=used.get("mariadb", 0.0),
        peak_rss_mb=round(max(peak.values(), default=0), 1),
        broker_cpu_s=used.get("kafka", 0.0),
        processes=len(running),
    )


def in_one_connection(
    pipeline: Pipeline, rows: int, statements: list[tuple[str, list[Any]]], **options: Any
) -> dict[str, Any]:
    """Each statement then a COMMIT, on one connection: rows/s and MariaDB's CPU per row."""
    with pipeline.services.admin(pipeline.database, autocommit=False, **options) as db:
        meter, cursor = report.Meter(services.local_pids()), db.cursor()
        for statement, values in statements:
            cursor.execute(statement, values)
            db.commit()
        seconds, used = meter.read()
    return figures(rows, seconds, server_cpu_s=used.get("mariadb", 0.0))


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
        report.say(f"preloading {rows:,} frames over {len(products)} partitions")
        sample = preload(pipeline, rows, tsv, naive_rows)
        report.say("bound: LOAD DATA LOCAL INFILE of the same rows")
        bound = [(LOAD_DATA, [str(tsv)])]
        phases = {"load_data": in_one_connection(table["bound"], rows, bound, local_infile=True)}
        expected = checksum(table["bound"])
        assert expected[0] == rows, f"the bound loaded {expected[0]} rows of {rows}"
        for name, phase, groups, bulk_load, what in (
            ("consumer_insert", "insert", [",".join(products)], "off", "the INSERT path"),
            ("consumer", "load_data", [",".join(products)], "on", "the LOAD DATA path"),
            ("consumer_split", "split", split, "on", "processes with CONSUMER_PRODUCTS, at once"),
        ):
            report.say(f"consumer on {what}")
            phases[name] = run_consumers(table[phase], phase, groups, bulk_load)
            found = checksum(table[phase])
            assert found == expected, f"{phase}: table differs from the bound's ({found})"
        report.say(f"naive: one INSERT + COMMIT per row, {len(sample):,} rows")
        inserts = [(INSERT, [row[name] for name in COLUMN_NAMES]) for row in sample]
        phases["naive"] = in_one_connection(table["naive"], len(sample), inserts)
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


def print_report(result: dict[str, Any]) -> None:
    bound = result["load_data"]["rows_per_s"]
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
        phase = result[key]
        figures = f"{phase['rows_per_s']:>9,} {phase['rows_per_s'] / bound:>8.2f}"
        figures += f" {phase['client_cpu_us_per_row']:>14.1f} {phase['peak_rss_mb']:>12.0f}"
        lines.append((name, f"{figures} {phase['server_cpu_us_per_row']:>15.1f}"))
    lines.append(("consumer / naive", f"{result['ratios']['consumer_to_naive']:.1f} x"))
    load, cpus = result["machine"]["load_average"][0], result["machine"]["cpus"]
    title = f"backfill, {result['rows']:,} rows, {len(result['products'])} products"
    report.print_table(f"{title} (load average {load:.1f} on {cpus} cpus)", lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    arguments = report.parser(__doc__, "bench.consumer_backfill")
    add = arguments.add_argument
    add("--rows", type=int, default=1_000_000, help="frames to preload")
    add("--products", type=int, default=3, help="how many (3: the pipeline's own)")
    add("--naive-rows", type=int, default=5000, help="naive sample rows")
    add("--json", type=Path, help="write the results here")
    args = arguments.parse_args(argv)
    count = args.products
    products = PRODUCTS if count == 3 else tuple(f"P{n:03d}-USD" for n in range(count))
    result = run(args.rows, products, min(args.naive_rows, args.rows))
    print_report(result)
    report.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
