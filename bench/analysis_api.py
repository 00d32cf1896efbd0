"""Analysis API benchmark: latency and throughput over a large `order` table.

N ticks (over `--days`, ending now; prices a wave plus noise) made by the database itself
fill a throwaway copy of `order`, then `python -m analysis` serves them as the read-only
account. For candles (1 minute, the latest 300 buckets), ticker and largest trades (24 h,
top 10): p50/p99 with one keep-alive client, beside the same SQL statement run directly
(the database's part) and /healthz (the HTTP stack's part), and requests/s with
`--clients` concurrent clients. Targets: candles p99 < 100 ms, ticker < 10 ms.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analysis import queries
from bench import report
from ops.http import wait_for_answer
from ops.pipeline import Pipeline, free_port, throwaway_pipeline

READER, READER_PASSWORD = "ticker_reader", "ticker_reader"
PRODUCTS = ("BTC-USD", "ETH-BTC", "BTC-EUR", "ETH-USD", "SOL-USD", "LTC-USD")
CHUNK_DIGITS = 6  # ticks are made 10^6 a statement, sequence numbers from digit tables
DIGITS = "(SELECT 0 AS d" + "".join(f" UNION ALL SELECT {d}" for d in range(1, 10)) + ")"
NUMBERS = " + ".join(f"{10**k} * d{k}.d" for k in range(CHUNK_DIGITS))
# The database makes the ticks itself (no Python loop over 10 million rows):
# the price a slow wave plus noise, the size and side from the sequence's CRC32.
GENERATE = f"""
INSERT INTO `order` (product_id, sequence, trade_id, price, side, last_size, time,
    received_at, best_bid, best_ask, best_bid_size, best_ask_size, open_24h, volume_24h,
    low_24h, high_24h, volume_30d, kafka_partition, kafka_offset)
SELECT %(product)s, seq, seq, price, IF(CRC32(seq) & 1, 'buy', 'sell'),
    MOD(CRC32(seq), 1000000000) / 100000000, at, at, price, price, 1, 1, price, 12345.678,
    price, price, 345678.9, 0, seq
FROM (SELECT seq, ROUND(84000 + 3000 * SIN(seq / 50000) + MOD(CRC32(seq), 5000) / 100, 2)
          AS price, CAST(%(start)s AS DATETIME(6)) + INTERVAL seq * %(step_us)s MICROSECOND AS at
      FROM (SELECT %(first)s + {NUMBERS} AS seq
            FROM {", ".join(f"{DIGITS} AS d{k}" for k in range(CHUNK_DIGITS))}) AS numbers
      WHERE seq < %(ticks)s) AS ticks
"""
Request = Callable[[int], object]  # makes the n-th request of a run


def load(pipeline: Pipeline, rows: int, days: float) -> dict[str, float]:
    """`rows` ticks over `days` ending now, spread evenly over the products; the seconds
    it took, and ANALYZE TABLE's."""
    ticks, span = rows // len(pipeline.products), timedelta(days=days)
    start = datetime.now(UTC).replace(tzinfo=None) - span
    values = {"ticks": ticks, "start": start, "step_us": span // timedelta(microseconds=ticks)}
    began = time.perf_counter()
    with pipeline.services.admin(pipeline.database) as db:
        for first in range(0, ticks, 10**CHUNK_DIGITS):
            for product in pipeline.products:
                db.cursor().execute(GENERATE, values | {"product": product, "first": first})
            done = min(first + 10**CHUNK_DIGITS, ticks) * len(pipeline.products)
            report.say(f"loaded {done:,} rows")
    loaded = time.perf_counter()
    pipeline.rows("ANALYZE TABLE `order`")
    return {"load_s": loaded - began, "analyze_s": time.perf_counter() - loaded}


def requester(port: int, paths: list[str]) -> Request:
    """Requests on one keep-alive connection, round-robin over `paths`; 200 expected."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(n: int) -> None:
        connection.request("GET", paths[n % len(paths)])
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{paths[n % len(paths)]}: {response.status}")

    return request


def timed(call: Request, count: int) -> dict[str, float]:
    """p50 and p99 in ms of `count` calls, after a warm-up (buffer pool, connections)."""
    for n in range(min(20, count)):
        call(n)
    seconds = []
    for n in range(count):
        began = time.perf_counter()
        call(n)
        seconds.append(time.perf_counter() - began)
    return {f"{p}_ms": round(s * 1000, 2) for p, s in report.percentiles(seconds, (50, 99)).items()}


def throughput(port: int, paths: list[str], clients: int, seconds: float) -> float:
    """Requests/s of `clients` concurrent keep-alive clients for `seconds`."""
    stop_at = time.monotonic() + seconds

    def client(number: int) -> int:
        request, n = requester(port, paths), number
        while time.monotonic() < stop_at:
            request(n)
            n += 1
        return n - number

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:  # a failed request is raised here
        done = sum(pool.map(client, range(clients)))
    return round(done / (time.perf_counter() - began), 1)


def measure(pipeline: Pipeline, args: Any) -> dict[str, Any]:
    """Latency (API and SQL alone) and throughput of each endpoint, and the server's cost."""
    products, port = pipeline.products, free_port()
    env = {"MYSQL_USER": READER, "MYSQL_PASSWORD": READER_PASSWORD, "ANALYSIS_PORT": str(port)}
    process = pipeline.start("analysis", env=env | {"ANALYSIS_QUERY_TIMEOUT_S": "60"})
    wait_for_answer(f"http://127.0.0.1:{port}/healthz", timeout_s=60)
    utc = {"autocommit": True, "init_command": "SET time_zone = '+00:00'"}
    sql = pipeline.services.connect(READER, READER_PASSWORD, pipeline.database, **utc)

    def alone(query: str, arguments: list[Any]) -> Request:
        """The endpoint's statement run directly, round-robin over `arguments`."""
        return lambda n: sql.cursor().execute(query, arguments[n % len(arguments)])

    now = datetime.now(UTC).replace(tzinfo=None)
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    candles = {"g": 60, "start": end - timedelta(minutes=300), "end": end}
    largest = [*[value for p in products for value in (p, now - timedelta(hours=24), 10)], 10]
    endpoints: dict[str, tuple[list[str], Request | None]] = {
        "candles 1 min x 300": (
            [f"/products/{p}/candles?granularity=60" for p in products],
            alone(queries.CANDLES, [candles | {"product": p} for p in products]),
        ),
        "ticker": (
            [f"/products/{p}/ticker" for p in products],
            alone(queries.TICKER, [{"product": p} for p in products]),
        ),
        "largest trades 24 h": (
            ["/trades/largest?hours=24&limit=10"],
            alone(queries.largest_sql(len(products)), [largest]),
        ),
        "healthz (HTTP floor)": (["/healthz"], None),
    }
    result: dict[str, Any] = {}
    try:
        for name, (paths, statement) in endpoints.items():
            figures = {"api": timed(requester(port, paths), args.requests)}  # a fresh connection
            if statement is not None:
                figures["sql_alone"] = timed(statement, args.requests)
            rate = throughput(port, paths, args.clients, args.seconds)
            result[name] = figures | {"requests_per_s": rate}
        result["server_cpu_s"] = report.cpu_seconds(process.pid)
        result["server_peak_rss_mb"] = round(report.peak_rss_mb(process.pid), 1)
    finally:
        report.stop(process)
        sql.close()
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    arguments = report.parser(__doc__, "bench.analysis_api")
    arguments.add_argument("--json", type=Path, default=Path("bench/results/analysis_api.json"))
    add = arguments.add_argument
    add("--rows", type=int, default=10_000_000)
    add("--products", type=int, default=3, choices=range(1, len(PRODUCTS) + 1))
    add("--days", type=float, default=30)
    add("--requests", type=int, default=300, help="per endpoint, latency")
    add("--clients", type=int, default=8)
    add("--seconds", type=float, default=10, help="per endpoint, throughput")
    args = arguments.parse_args(argv)
    products = PRODUCTS[: args.products]
    found: dict[str, Any] = {"rows": args.rows, "products": list(products), "days": args.days}
    with throwaway_pipeline("bench", products) as pipeline:
        for table in ("order", "trade"):  # the tape is empty here: candles come from ticks
            pipeline.rows(f"GRANT SELECT ON `{pipeline.database}`.`{table}` TO %s@%s", READER, "%")
        report.say(f"loading {args.rows:,} rows into {pipeline.database}.order")
        found["load"] = load(pipeline, args.rows, args.days)
        found["rows_in_table"] = pipeline.row_count()
        found["endpoints"] = measure(pipeline, args)
    summarize(found, args.clients)
    report.write_json(args.json, found)
    return found


def summarize(found: dict[str, Any], clients: int) -> None:
    rows = []
    targets = {"candles 1 min x 300": 100, "ticker": 10}
    for name, figures in found["endpoints"].items():
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
    report.print_table(f"analysis API over {found['rows_in_table']:,} rows", rows)


if __name__ == "__main__":
    main()
