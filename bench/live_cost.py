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

import psutil

from bench import report
from ops import services
from ops.pipeline import PRODUCTS, Pipeline, free_port, throwaway_pipeline

PARTS = ("producer", "consumer", "broker", "mariadb")
WARM_UP_S = 5  # imports, connections, producer id, first batches
LATENCY = (
    "SELECT TIMESTAMPDIFF(MICROSECOND, received_at, inserted_at) / 1e6 FROM `order` "
    "WHERE received_at >= %s AND received_at < %s + INTERVAL %s SECOND"
)


def counters(pipeline: Pipeline) -> tuple[int, int]:
    """Records ever appended to __consumer_offsets (one per partition per offset commit),
    and MySQL commits (Com_commit)."""
    commits = pipeline.rows("SHOW GLOBAL STATUS LIKE 'Com_commit'")
    return sum(pipeline.end_offsets("__consumer_offsets")), int(commits[0][1])


def measure(pipeline: Pipeline, rate: float, connections: int, seconds: float) -> dict[str, Any]:
    """One run at `rate` ticks/s in all: counters read before and after the window."""
    port = free_port()
    feed = report.simulated_feed(pipeline, rate / len(PRODUCTS), FEED_CONNECTIONS=str(connections))
    with feed as (_, start):
        consumer = start("consumer", CONSUMER_METRICS_PORT=str(port))
        producer = start("producer")
        local = services.local_pids()
        if local.keys() != {"kafka", "mariadb"}:
            raise SystemExit("the broker and MariaDB were not started by ops/services.py here")
        pids = {"producer": producer.pid, "consumer": consumer.pid}
        pids |= {"broker": local["kafka"], "mariadb": local["mariadb"]}
        report.metrics_text(port)  # the consumer is up
        time.sleep(WARM_UP_S)
        since = datetime.now(UTC).replace(tzinfo=None)
        page, (offsets, commits) = report.metrics_text(port), counters(pipeline)
        meter = report.Meter(pids)
        time.sleep(seconds)
        elapsed, cpu = meter.read()
        offsets_after, commits_after = counters(pipeline)
        metric, quantiles = "consumer_end_to_end_seconds", (0.5, 0.95, 0.99)
        histogram = report.histogram_quantiles(report.metrics_text(port), metric, quantiles, page)
        memory = {part: psutil.Process(pid).memory_info().rss / 2**20 for part, pid in pids.items()}
    latencies = [float(v) for (v,) in pipeline.rows(LATENCY, since, since, round(seconds))]
    ticks = max(1, len(latencies))
    return {
        "rate": rate, "feed_connections": connections, "seconds": elapsed, "rows": len(latencies),
        "cores": {name: value / elapsed for name, value in cpu.items()},
        "us_per_tick": {name: value / ticks * 1e6 for name, value in cpu.items()},
        "rss_mb": memory,
        "offset_commits_per_s": (offsets_after - offsets) / elapsed,
        "mysql_commits_per_s": (commits_after - commits) / elapsed,
        "receive_to_insert_s": report.percentiles(latencies),
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
    arguments = report.parser(__doc__, "bench.live_cost")
    add = arguments.add_argument
    add("--runs", default="15:2,150:2,300:2,900:2,900:1", help="rate:FEED_CONNECTIONS,...")
    add("--seconds", type=float, default=30)
    add("--json", type=Path, help="write the results here")
    args = arguments.parse_args(argv)
    runs = []
    for run in args.runs.split(","):
        rate, _, connections = run.partition(":")
        with throwaway_pipeline("bench") as pipeline:
            runs.append(measure(pipeline, float(rate), int(connections or 2), args.seconds))
    title = f"live cost: cores / µs per tick of {', '.join(PARTS)} | RSS producer / consumer"
    title += " | offset commits/s | MySQL commits/s | receive -> row p50 / p99"
    report.print_table(title, [describe(run) for run in runs])
    report.write_json(args.json, {"runs": runs})
    return {"runs": runs}


if __name__ == "__main__":
    main()
