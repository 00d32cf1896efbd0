"""Analysis API benchmark: latency and throughput over a large `order` table.

    .venv/bin/python -m bench.analysis_api [--rows 10000000] [--products 3] [--days 30]
                                           [--requests 300] [--clients 8] [--seconds 10]

1. load: N generated ticks (one every ~`days`/N per product, ending now; prices a random walk,
   sizes random) written as TSV and loaded with `LOAD DATA LOCAL INFILE` into a fresh copy of
   `order` (all of schema.sql's indexes), chunk by chunk; then ANALYZE TABLE.
2. `python -m analysis` as the read-only account over that table.
3. latency, one client, keep-alive: p50/p99 of candles (1 minute, the latest 300 buckets),
   ticker and largest trades (24 h, all products, top 10), round-robin over the products;
   beside each, the bound from the same run: the same SQL statement run directly with
   PyMySQL (what the database alone costs), and /healthz (what the HTTP stack alone costs).
4. throughput: requests/s with `clients` concurrent keep-alive clients for `seconds` each.

Targets: candles p99 < 100 ms, ticker p99 < 10 ms. The database is dropped at the end
(`--keep` keeps it for a second run with `--database NAME --rows 0`).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql

from analysis import queries
from bench.report import Process, print_table, write_json
from ops.pipeline import free_port

ROOT = Path(__file__).resolve().parent.parent
MYSQL_HOST = os.environ.get("MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("MYSQL_PORT", "3306"))
ADMIN = os.environ.get("MYSQL_ADMIN_USER", "root")
ADMIN_PASSWORD = os.environ.get("MYSQL_ADMIN_PASSWORD", "")
READER, READER_PASSWORD = "ticker_reader", "ticker_reader"
PRODUCTS = ("BTC-USD", "ETH-BTC", "BTC-EUR", "ETH-USD", "SOL-USD", "LTC-USD")
CHUNK = 1_000_000
LOAD = """
LOAD DATA LOCAL INFILE %s INTO TABLE `order`
(product_id, sequence, trade_id, price, side, last_size, @time)
SET time = @time, received_at = @time, best_bid = price, best_ask = price,
    best_bid_size = 1, best_ask_size = 1, open_24h = price, volume_24h = 12345.678,
    low_24h = price, high_24h = price, volume_30d = 345678.9, kafka_partition = 0,
    kafka_offset = sequence
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.analysis_api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--products", type=int, default=3, choices=range(1, len(PRODUCTS) + 1))
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--requests", type=int, default=300, help="per endpoint, latency")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10, help="per endpoint, throughput")
    parser.add_argument("--database", help="reuse this database (with --rows 0)")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument("--json", type=Path, default=Path("bench/results/analysis_api.json"))
    return parser.parse_args(argv)


def admin(database: str | None = None, **options: Any) -> pymysql.Connection[Any]:
    return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=ADMIN, password=ADMIN_PASSWORD,
                           database=database, autocommit=True, **options)


def create_database(name: str) -> None:
    with admin() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
        cursor.execute(f"CREATE TABLE `{name}`.`order` LIKE coinbase.`order`")
        cursor.execute(f"GRANT SELECT ON `{name}`.`order` TO '{READER}'@'%'")


def write_chunk(path: Path, product: str, first: int, count: int, start: datetime,
                step_s: float, state: dict[str, int], rng: random.Random) -> None:
    """`count` ticks of one product from sequence `first`; the price walk goes on in `state`."""
    cents = state.setdefault(product, 8_400_000)
    base = start.timestamp()
    lines = []
    for n in range(count):
        sequence = first + n
        cents = max(100, cents + rng.randint(-300, 300))
        at = datetime.fromtimestamp(base + sequence * step_s, UTC)
        size = rng.randint(1, 10**9)
        lines.append(f"{product}\t{sequence}\t{sequence}\t{cents // 100}.{cents % 100:02d}\t"
                     f"{'buy' if size & 1 else 'sell'}\t{size // 10**8}.{size % 10**8:08d}\t"
                     f"{at:%Y-%m-%d %H:%M:%S.%f}\n")
    state[product] = cents
    path.write_text("".join(lines))


def load(database: str, rows: int, products: tuple[str, ...], days: float) -> dict[str, float]:
    """Generate and LOAD DATA the ticks, chunk by chunk; return the seconds each phase took."""
    per_product = rows // len(products)
    span_s = days * 86400
    step_s = span_s / per_product
    start = datetime.now(UTC) - timedelta(seconds=span_s)
    rng = random.Random(1)
    state: dict[str, int] = {}
    timings = {"generate_s": 0.0, "load_s": 0.0}
    with tempfile.TemporaryDirectory() as folder, admin(database, local_infile=True) as db:
        path = Path(folder) / "ticks.tsv"
        for first in range(0, per_product, CHUNK):
            count = min(CHUNK, per_product - first)
            for product in products:
                began = time.perf_counter()
                write_chunk(path, product, first, count, start, step_s, state, rng)
                timings["generate_s"] += time.perf_counter() - began
                began = time.perf_counter()
                with db.cursor() as cursor:
                    cursor.execute(LOAD, (str(path),))
                timings["load_s"] += time.perf_counter() - began
            print(f"  loaded {(first + count) * len(products):,} rows", flush=True)
        began = time.perf_counter()
        with db.cursor() as cursor:
            cursor.execute("ANALYZE TABLE `order`")
            cursor.fetchall()
        timings["analyze_s"] = time.perf_counter() - began
    return timings


def start_service(database: str) -> tuple[str, int, subprocess.Popen[bytes]]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MYSQL_HOST": MYSQL_HOST,
           "MYSQL_PORT": str(MYSQL_PORT), "MYSQL_USER": READER, "MYSQL_PASSWORD": READER_PASSWORD,
           "MYSQL_DATABASE": database, "ANALYSIS_PORT": str(port), "ANALYSIS_HOST": "127.0.0.1",
           "LOG_FORMAT": "json", "ANALYSIS_QUERY_TIMEOUT_S": "60"}
    process = subprocess.Popen([sys.executable, "-m", "analysis"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if get(http.client.HTTPConnection("127.0.0.1", port, timeout=5), "/healthz") == 200:
                return "127.0.0.1", port, process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("analysis did not become healthy")


def get(connection: http.client.HTTPConnection, path: str) -> int:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response.status


def requester(connection: http.client.HTTPConnection, paths: list[str]) -> Callable[[int], None]:
    """The n-th request of a latency run: round-robin over `paths`, 200 expected."""

    def request(n: int) -> None:
        status = get(connection, paths[n % len(paths)])
        if status != 200:
            raise SystemExit(f"{paths[n % len(paths)]}: {status}")

    return request


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        f"p{p}_ms": round(ordered[min(len(ordered) - 1, len(ordered) * p // 100)] * 1000, 2)
        for p in (50, 99)
    }


def timed(call: Callable[[int], object], count: int) -> dict[str, float]:
    for n in range(min(20, count)):  # warm-up: pages in the buffer pool, connections open
        call(n)
    seconds = []
    for n in range(count):
        began = time.perf_counter()
        call(n)
        seconds.append(time.perf_counter() - began)
    return percentiles(seconds)


def throughput(host: str, port: int, paths: list[str], clients: int, seconds: float) -> float:
    done = [0] * clients
    failures: list[str] = []
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        n = number
        while time.monotonic() < stop_at:
            status = get(connection, paths[n % len(paths)])
            if status != 200:
                failures.append(f"{paths[n % len(paths)]}: {status}")
                return
            done[number] += 1
            n += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"a request failed: {failures[0]}")
    return round(sum(done) / (time.perf_counter() - began), 1)


def measure(args: argparse.Namespace, database: str, products: tuple[str, ...]) -> dict[str, Any]:
    host, port, process = start_service(database)
    connection = http.client.HTTPConnection(host, port, timeout=60)
    sql = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=READER, password=READER_PASSWORD,
                          database=database, autocommit=True)
    with sql.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")
    now = datetime.now(UTC).replace(tzinfo=None)
    since = now - timedelta(hours=24)
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)

    def run_sql(statement: str, args: Any) -> None:
        with sql.cursor() as cursor:
            cursor.execute(statement, args)
            cursor.fetchall()

    def candles_sql(n: int) -> None:
        product = products[n % len(products)]
        start = end - timedelta(minutes=300)
        run_sql(queries.CANDLES, {"g": 60, "product": product, "start": start, "end": end})

    def ticker_sql(n: int) -> None:
        run_sql(queries.TICKER, {"product": products[n % len(products)]})

    def largest_sql(n: int) -> None:
        args = [value for p in products for value in (p, since, 10)]
        run_sql(queries.largest_sql(len(products)), [*args, 10])

    endpoints: dict[str, tuple[list[str], Callable[[int], None]]] = {
        "candles 1 min x 300": (
            [f"/products/{p}/candles?granularity=60" for p in products], candles_sql),
        "ticker": ([f"/products/{p}/ticker" for p in products], ticker_sql),
        "largest trades 24 h": (["/trades/largest?hours=24&limit=10"], largest_sql),
    }
    result: dict[str, Any] = {}
    try:
        for name, (paths, statement) in endpoints.items():
            connection.close()  # a fresh keep-alive connection for each latency run
            if get(connection, paths[0]) != 200:
                raise SystemExit(f"{paths[0]} failed")
            result[name] = {
                "api": timed(requester(connection, paths), args.requests),
                "sql_alone": timed(statement, args.requests),
                "requests_per_s": throughput(host, port, paths, args.clients, args.seconds),
            }
            print(f"  {name}: {result[name]}", flush=True)
        connection.close()
        result["healthz (HTTP floor)"] = {
            "api": timed(requester(connection, ["/healthz"]), args.requests),
            "requests_per_s": throughput(host, port, ["/healthz"], args.clients, args.seconds),
        }
        result["server_cpu_s"] = Process(process.pid).cpu_seconds()
        result["server_peak_rss_mb"] = round(Process(process.pid).peak_rss_mb(), 1)
    finally:
        process.terminate()
        process.wait(30)
        sql.close()
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    products = PRODUCTS[: args.products]
    database = args.database or f"bench_analysis_{uuid.uuid4().hex[:8]}"
    report: dict[str, Any] = {"rows": args.rows, "products": list(products), "days": args.days}
    try:
        if args.rows:
            create_database(database)
            print(f"loading {args.rows:,} rows into {database}.order", flush=True)
            report["load"] = load(database, args.rows, products, args.days)
        with admin(database) as db, db.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM `order`")
            report["rows_in_table"] = cursor.fetchone()[0]
        report["endpoints"] = measure(args, database, products)
    finally:
        if not args.keep:
            with admin() as db, db.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
    summarize(report, args.clients)
    write_json(args.json, report)
    return report


def summarize(report: dict[str, Any], clients: int) -> None:
    rows = []
    targets = {"candles 1 min x 300": 100, "ticker": 10}
    for name, figures in report["endpoints"].items():
        if not isinstance(figures, dict):
            continue
        api, alone = figures["api"], figures.get("sql_alone")
        line = f"p50 {api['p50_ms']:6.1f} ms  p99 {api['p99_ms']:6.1f} ms"
        if alone:
            line += f"  (SQL alone p50 {alone['p50_ms']:.1f} / p99 {alone['p99_ms']:.1f} ms)"
        line += f"  {figures['requests_per_s']:,.0f} req/s at {clients} clients"
        if name in targets:
            verdict = "met" if api["p99_ms"] < targets[name] else "MISSED"
            line += f"  target p99 < {targets[name]} ms: {verdict}"
        rows.append((name, line))
    print_table(f"analysis API over {report['rows_in_table']:,} rows", rows)


if __name__ == "__main__":
    main()
