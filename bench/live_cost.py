"""Live cost: what the whole pipeline costs per tick at live rates, and its latency.

Each run (total ticks/s : FEED_CONNECTIONS [: tape]) is simulator -> producer -> Kafka ->
consumer -> MariaDB on a throwaway pipeline; `tape` adds the trade tape (`matches` to the
trades topic to `trade`; the simulator makes 1.3 trades a tick). After a warm-up, for
`--seconds`: CPU cores and µs per tick of producer, consumer, broker and MariaDB, their
memory, Kafka offset commits/s (records appended to __consumer_offsets), MySQL commits/s
(Com_commit), and receive -> row latency of every row of `order` and `trade` (received_at
-> inserted_at) beside the consumer's histogram. A tape run beside one without it (same
rate and connections) also gets the cores the tape adds to each part, and µs per trade.
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
    "SELECT TIMESTAMPDIFF(MICROSECOND, received_at, inserted_at) / 1e6 FROM `{}` "
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
        text, order = report.metrics_text(port), 'table="order"'
        histogram = report.histogram_quantiles(text, metric, quantiles, page, order)
        memory = {part: psutil.Process(pid).memory_info().rss / 2**20 for part, pid in pids.items()}
    latencies, trades = (
        [float(v) for (v,) in pipeline.rows(LATENCY.format(table), since, since, round(seconds))]
        for table in ("order", "trade")
    )
    ticks = max(1, len(latencies))
    return {
        "rate": rate, "feed_connections": connections, "seconds": elapsed, "rows": len(latencies),
        "tape": bool(pipeline.trades_topic), "trades": len(trades),
        "trade_receive_to_insert_s": report.percentiles(trades),
        "cores": {name: value / elapsed for name, value in cpu.items()},
        "us_per_tick": {name: value / ticks * 1e6 for name, value in cpu.items()},
        "rss_mb": memory,
        "offset_commits_per_s": (offsets_after - offsets) / elapsed,
        "mysql_commits_per_s": (commits_after - commits) / elapsed,
        "receive_to_insert_s": report.percentiles(latencies),
        "receive_to_commit_histogram_s": histogram,
    }  # fmt: skip


def describe(run: dict[str, Any]) -> tuple[str, str]:
    rss, tables = run["rss_mb"], ("receive_to_insert_s", "trade_receive_to_insert_s")
    parts = " | ".join(f"{run['cores'][p]:.3f} / {run['us_per_tick'][p]:.0f}" for p in PARTS)
    late = [run[key] for key in tables[: 1 + run["tape"]]]
    trades = f" + {run['trades']:,} trades" * run["tape"]
    return (
        f"{run['rate']:g} ticks/s, {run['feed_connections']} conn, {run['rows']:,} rows{trades}",
        f"{parts} | {rss['producer']:.0f} / {rss['consumer']:.0f} MB"
        f" | {run['offset_commits_per_s']:.1f} | {run['mysql_commits_per_s']:.1f} | "
        + " | ".join(f"{t['p50'] * 1000:.1f} / {t['p99'] * 1000:.1f} ms" for t in late),
    )


def tape_costs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each tape run with a run without the tape at its rate and connections: the cores
    the tape adds to each part, and those per trade in µs."""
    plain = {(r["rate"], r["feed_connections"]): r for r in runs if not r["tape"]}
    costs = []
    for run in runs:
        if run["tape"] and (off := plain.get((run["rate"], run["feed_connections"]))):
            per_s = run["trades"] / run["seconds"]
            cores = {p: run["cores"][p] - off["cores"][p] for p in PARTS}
            us = {p: value / max(per_s, 1e-9) * 1e6 for p, value in cores.items()}
            costs.append({"rate": run["rate"], "feed_connections": run["feed_connections"],
                          "trades_per_s": per_s, "cores": cores, "us_per_trade": us})  # fmt: skip
    return costs


def describe_cost(cost: dict[str, Any]) -> tuple[str, str]:
    cores, us = cost["cores"], cost["us_per_trade"]
    return (
        f"{cost['rate']:g} ticks/s, {cost['feed_connections']} conn, "
        f"{cost['trades_per_s']:,.0f} trades/s",
        " | ".join(f"{cores[p]:+.3f} / {us[p]:+.0f}" for p in PARTS),
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    arguments = report.parser(__doc__, "bench.live_cost")
    add = arguments.add_argument
    runs_default = "15:2,150:2,300:2,300:2:tape,900:2,900:2:tape,900:1"
    add("--runs", default=runs_default, help="rate:FEED_CONNECTIONS[:tape],...")
    add("--seconds", type=float, default=30)
    add("--json", type=Path, help="write the results here")
    args = arguments.parse_args(argv)
    runs = []
    for run in args.runs.split(","):
        rate, connections, tape = [*run.split(":"), "", ""][:3]
        if tape not in ("", "tape"):
            raise SystemExit(f"--runs: {run!r} is not rate:FEED_CONNECTIONS[:tape]")
        with throwaway_pipeline("bench", tape=bool(tape)) as pipeline:
            runs.append(measure(pipeline, float(rate), int(connections or 2), args.seconds))
    title = f"live cost: cores / µs per tick of {', '.join(PARTS)} | RSS producer / consumer"
    title += " | offset commits/s | MySQL commits/s | receive -> row p50 / p99 (order, trade)"
    report.print_table(title, [describe(run) for run in runs])
    if costs := tape_costs(runs):
        title = f"trade tape, on - off: cores / µs per trade of {', '.join(PARTS)}"
        report.print_table(title, [describe_cost(cost) for cost in costs])
    report.write_json(args.json, {"runs": runs, "tape_cost": costs})
    return {"runs": runs, "tape_cost": costs}


if __name__ == "__main__":
    main()
