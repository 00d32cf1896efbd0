"""`make bench`: every benchmark against the local real services, one JSON report, one plot.

    .venv/bin/python -m bench [--rows 1000000] [--count 100000] [--latency-seconds 60]
                              [--scaling 3,12,48] [--scaling-rows 300000] [--out bench/results]

Runs the producer benchmark (against the transport and Kafka bounds), the consumer backfill
(against LOAD DATA and one-insert-per-commit), live end-to-end latency at 100 msg/s per
product, and the backfill again with more products (partitions and threads follow the
product list) to show how cost grows. Every figure is printed beside its bound from the
same run. Writes <out>/report.json and, when matplotlib is installed (`make bench`
installs it), <out>/bench.png.
"""

from __future__ import annotations

import argparse
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import analysis_api, consumer_backfill, live_latency, producer_throughput
from bench.report import print_table, write_json


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="backfill frames")
    parser.add_argument("--count", type=int, default=100_000, help="producer tickers/product")
    parser.add_argument("--latency-seconds", type=float, default=60)
    parser.add_argument("--scaling", default="3,12,48", help="product counts, comma-separated")
    parser.add_argument("--scaling-rows", type=int, default=300_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "producer": producer_throughput.main(
            ["--count", str(args.count), "--latency-seconds", "20"]
        ),
        "backfill": consumer_backfill.main(["--rows", str(args.rows)]),
        "live_latency": live_latency.main(["--seconds", str(args.latency_seconds)]),
        "scaling": {
            products: consumer_backfill.main(
                ["--rows", str(args.scaling_rows), "--products", products, "--naive-rows", "2000"]
            )
            for products in args.scaling.split(",")
        },
        "analysis_api": analysis_api.main([]),  # 10 million rows: about 10 more minutes
    }
    summarize(report)
    write_json(args.out / "report.json", report)
    try:
        from bench.plot import draw
    except ImportError:
        print("matplotlib is not installed: no plot (make bench installs it)")
    else:
        draw(report, args.out / "bench.png")
    print(f"\nreport: {args.out / 'report.json'}")
    return report


def summarize(report: dict[str, Any]) -> None:
    producer, backfill = report["producer"], report["backfill"]
    live = report["live_latency"]["receive_to_insert_s"]
    rows = [
        (
            "producer messages/s",
            f"{producer['producer']['messages_per_s']:,.0f}",
            f"{producer['ratio_to_transport_bound']:.2f} x transport bound, "
            f"{producer['ratio_to_kafka_bound']:.2f} x Kafka bound",
        ),
        (
            "producer latency p99 (received -> acked)",
            f"{producer['latency_s']['p99'] * 1000:.0f} ms",
            "<= bucket bound",
        ),
        (
            "backfill rows/s",
            f"{backfill['consumer']['rows_per_s']:,}",
            f"{backfill['ratios']['consumer_to_load_data']:.2f} x LOAD DATA, "
            f"{backfill['ratios']['consumer_to_naive']:.0f} x naive",
        ),
        (
            "live end-to-end p50 / p99",
            f"{live['p50'] * 1000:.0f} / {live['p99'] * 1000:.0f} ms",
            "receive -> row inserted, every row",
        ),
    ]
    for products, result in report["scaling"].items():
        rows.append(
            (
                f"backfill with {products} products, rows/s",
                f"{result['consumer']['rows_per_s']:,}",
                f"{result['ratios']['consumer_to_load_data']:.2f} x LOAD DATA",
            )
        )
    width = max(len(name) for name, _, _ in rows)
    print_table(
        "summary", [(name.ljust(width), f"{value:>12}   {bound}") for name, value, bound in rows]
    )


if __name__ == "__main__":
    main()
