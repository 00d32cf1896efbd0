"""Live end-to-end latency: frame received by the producer -> row committed in MySQL.

    .venv/bin/python -m bench.live_latency --seconds 60 --rate 100 [--json out.json]

Runs simulator (`--rate` tickers/s per product) -> producer -> Kafka -> consumer -> MariaDB
for `--seconds`, then reads, for every row, `inserted_at - received_at` (the producer's
receive time travels in a Kafka header; `inserted_at` is the server's clock at insert,
on the same machine) and reports p50/p95/p99, beside the consumer's own histogram of
receive -> commit (upper bucket bounds).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymysql.connections import Connection
from pymysql.cursors import Cursor

from bench.producer_throughput import (
    BOOTSTRAP,
    PRODUCTS,
    create_topics,
    delete_topics,
    histogram_quantiles,
    start_simulator,
)
from bench.report import free_port, print_table, write_json
from ops import services

ROOT = Path(__file__).resolve().parent.parent


def admin(database: str | None = None) -> Connection[Cursor]:
    return services.admin_connection(database, autocommit=True)


def create_database(name: str) -> None:
    with admin() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
        cursor.execute(f"CREATE TABLE `{name}`.`order` LIKE coinbase.`order`")
        cursor.execute(f"GRANT SELECT, INSERT ON `{name}`.`order` TO 'ticker_writer'@'%'")


def drop_database(name: str) -> None:
    with admin() as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def percentiles(values: list[float], wanted: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    ordered = sorted(values)
    return {f"p{p}": ordered[min(len(ordered) - 1, len(ordered) * p // 100)] for p in wanted}


def start_service(module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env)


def read_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def wait_healthy(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"consumer not healthy at {url} after {timeout_s} s")


def row_latencies(database: str, since: datetime) -> list[float]:
    with admin(database) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT TIMESTAMPDIFF(MICROSECOND, received_at, inserted_at) / 1e6 "
            "FROM `order` WHERE received_at >= %s",
            (since,),
        )
        return [float(value) for (value,) in cursor.fetchall()]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=100, help="tickers/s per product")
    parser.add_argument("--warm-up-seconds", type=float, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    suffix = uuid.uuid4().hex[:8]
    topic, database = f"bench.live.{suffix}", f"bench_live_{suffix}"
    create_topics(topic, topic + ".dlq")
    create_database(database)
    metrics_port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAFKA_TOPIC": topic,
        "KAFKA_DLQ_TOPIC": topic + ".dlq",
        "PRODUCTS": ",".join(PRODUCTS),
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "KAFKA_GROUP_ID": f"bench-{suffix}",
        "MYSQL_DATABASE": database,
        "MYSQL_USER": "ticker_writer",
        "MYSQL_PASSWORD": "ticker_writer",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        "PRODUCER_METRICS_PORT": "0",
        "CONSUMER_METRICS_PORT": str(metrics_port),
    }
    simulator, url = start_simulator(rate=args.rate, count=None)
    processes = [start_service("consumer", env | {"COINBASE_WS_URL": url})]
    try:
        wait_healthy(f"http://127.0.0.1:{metrics_port}/healthz")
        processes.append(start_service("producer", env | {"COINBASE_WS_URL": url}))
        time.sleep(args.warm_up_seconds)  # start-up: imports, connects, producer id
        measured_from = datetime.now(UTC).replace(tzinfo=None)
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        before = read_text(metrics_url)
        time.sleep(args.seconds)
        histogram = histogram_quantiles(
            read_text(metrics_url), "consumer_end_to_end_seconds", (0.5, 0.95, 0.99), before
        )
    finally:
        for process in (*reversed(processes), simulator):
            process.terminate()
            process.wait(30)
    latencies = row_latencies(database, measured_from)
    drop_database(database)
    delete_topics(topic, topic + ".dlq")
    exact = percentiles(latencies)
    result = {
        "rows": len(latencies),
        "rate_per_product": args.rate,
        "seconds": args.seconds,
        "receive_to_insert_s": exact,
        "receive_to_commit_histogram_s": histogram,
    }
    print_table(
        f"live end-to-end latency at {args.rate:g} msg/s per product",
        [
            ("rows measured", f"{len(latencies):,}"),
            (
                "receive -> insert p50 / p95 / p99 (every row)",
                " / ".join(f"{exact[p] * 1000:.1f} ms" for p in ("p50", "p95", "p99")),
            ),
            (
                "receive -> commit p50 / p95 / p99 (<= bucket)",
                " / ".join(f"{histogram[p] * 1000:.0f} ms" for p in ("p50", "p95", "p99")),
            ),
        ],
    )
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
