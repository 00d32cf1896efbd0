"""Live cost: what the whole pipeline costs per tick at live rates, and its latency.

Each run (total ticks/s : FEED_CONNECTIONS) is simulator -> producer -> Kafka -> consumer
-> MariaDB on a throwaway pipeline; after a warm-up, for `--seconds`: CPU cores and µs per
tick of producer, consumer, broker and MariaDB, their memory, Kafka offset commits/s
(records appended to __consumer_offsets), MySQL commits/s (Com_commit), and receive -> row
latency of every row (received_at -> inserted_at) beside the consumer's histogram.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import (
    Process,
    histogram_quantiles,
    metrics_text,
    parser,
    percentiles,
    print_table,
    service_pid,
    start_simulator,
    stop,
    write_json,
)
from ops.pipeline import PRODUCTS, Pipeline, free_port, throwaway_pipeline

PARTS = ("producer", "consumer", "broker", "mariadb")
LATENCY = (
    "SELECT TIMESTAMPDIFF(MICROSECOND, received_at, inserted_at) / 1e6 FROM `order` "
    "WHERE received_at >= %s AND received_at < %s + INTERVAL %s SECOND"
)


def counters(pipeline: Pipeline) -> tuple[int, int]:
    """Records ever appended to __consumer_offsets (one per partition per offset commit),
    and MySQL commits (Com_commit)."""
    commits = pipeline.rows("SHOW GLOBAL STATUS LIKE 'Com_commit'")
    return sum(pipeline.end_offsets("__consumer_offsets")), int(commits[0][1])


def measure(pipeline: Pipeline, rate: float, connections: int, args: Any) -> dict[str, Any]:
    """One run at `rate` ticks/s in all: counters read before and after the window."""
    simulator, url = start_simulator(rate=rate / len(PRODUCTS), count=None)
    port = free_port()
    env = {"COINBASE_WS_URL": url, "LOG_LEVEL": "WARNING", "FEED_CONNECTIONS": str(connections)}
    consumer = pipeline.start("consumer", env=env | {"CONSUMER_METRICS_PORT": str(port)})
    producer = pipeline.start("producer", env=env)
    try:
        metrics_text(port)  # the consumer is up
        time.sleep(args.warm_up_seconds)  # imports, connections, producer id, first batches
        pids = {"producer": producer.pid, "consumer": consumer.pid}
        pids |= {"broker": service_pid("kafka"), "mariadb": service_pid("mariadb")}
        watched = {name: Process(pid) for name, pid in pids.items()}
        since = datetime.now(UTC).replace(tzinfo=None)
        before = {name: p.cpu_seconds() for name, p in watched.items()}
        page, (offsets, commits) = metrics_text(port), counters(pipeline)
        started = time.monotonic()
        time.sleep(args.seconds)
        cpu = {name: p.cpu_seconds() - before[name] for name, p in watched.items()}
        elapsed = time.monotonic() - started
        offsets_after, commits_after = counters(pipeline)
        metric, quantiles = "consumer_end_to_end_seconds", (0.5, 0.95, 0.99)
        histogram = histogram_quantiles(metrics_text(port), metric, quantiles, page)
        memory = {part: p.rss_mb() for part, p in watched.items()}
    finally:
        stop(producer, consumer, simulator)
    latencies = [float(v) for (v,) in pipeline.rows(LATENCY, since, since, round(args.seconds))]
    ticks = max(1, len(latencies))
    return {
        "rate": rate, "feed_connections": connections, "seconds": elapsed, "rows": len(latencies),
        "cores": {name: value / elapsed for name, value in cpu.items()},
        "us_per_tick": {name: value / ticks * 1e6 for name, value in cpu.items()},
        "rss_mb": memory,
        "offset_commits_per_s": (offsets_after - offsets) / elapsed,
        "mysql_commits_per_s": (commits_after - commits) / elapsed,
        "receive_to_insert_s": percentiles(latencies),
        "receive_to_commit_histogram_s": histogram,
    }  # fmt: skip


def describe(run: dict[str, Any]) -> tuple[str, str]:
    late, rss = run["receive_to_insert_s"], run["rss_mb"]
    parts = " | ".join(f"{run['cores'][p]:.3f} / {run['us_per_tick'][p]:.0f}" for p in PARTS)
    return (
        f"{run['rate']:g} ticks/s, {run['feed_connections']} conn, {run['rows']:,} rows",
        f"{parts} | {rss['producer']:.0f} / {rss['consumer']:.0f} MB"
        f" | {run['offset_commits_per_s']:.1f} | {run['mysql_commits_per_s']:.1f}"
        f" | {late['p50'] * 1000:.1f} / {late['p99'] * 1000:.1f} ms",
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    arguments = parser(__doc__, "bench.live_cost")
    add = arguments.add_argument
    add(
        "--runs", default="15:2,150:2,300:2,900:2,900:1", help="ticks/s in all:FEED_CONNECTIONS,..."
    )
    add("--seconds", type=float, default=30)
    add("--warm-up-seconds", type=float, default=5)
    add("--json", type=Path, help="write the results here")
    args = arguments.parse_args(argv)
    runs = []
    for run in args.runs.split(","):
        rate, _, connections = run.partition(":")
        with throwaway_pipeline("bench") as pipeline:
            runs.append(measure(pipeline, float(rate), int(connections or 2), args))
    title = f"live cost: cores / µs per tick of {', '.join(PARTS)} | RSS producer / consumer"
    title += " | offset commits/s | MySQL commits/s | receive -> row p50 / p99"
    print_table(title, [describe(run) for run in runs])
    write_json(args.json, {"runs": runs})
    return {"runs": runs}


if __name__ == "__main__":
    main()
