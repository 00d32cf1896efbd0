"""`make bench`: every benchmark against the local real services, one JSON report, one plot.

The producer (against the transport and Kafka bounds), the consumer backfill (against
LOAD DATA and one insert per commit), the live cost and latency of the whole pipeline at
15, 150, 300 and 900 ticks/s, the backfill with more products and the analysis API over 10
million rows. Every figure is printed beside its bound from the same run. Writes
<out>/report.json and <out>/bench.png.
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import analysis_api, consumer_backfill, live_cost, producer_throughput
from bench.plot import draw, live_latency
from bench.report import parser, print_table, write_json


def main(argv: list[str] | None = None) -> dict[str, Any]:
    arguments = parser(__doc__, "bench")
    add = arguments.add_argument
    add("--rows", type=int, default=1_000_000, help="backfill frames")
    add("--count", type=int, default=100_000, help="producer tickers/product")
    add("--live-seconds", type=float, default=30, help="per live-cost run")
    add("--scaling", default="3,12,48", help="product counts, comma-separated")
    add("--scaling-rows", type=int, default=300_000)
    add("--out", type=Path, default=Path("bench/results"))
    add("--skip-analysis", action="store_true", help="leave out the 10-million-row API benchmark")
    args = arguments.parse_args(argv)
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "producer": producer_throughput.main(["--count", str(args.count)]),
        "backfill": consumer_backfill.main(["--rows", str(args.rows)]),
        "live_cost": live_cost.main(["--seconds", str(args.live_seconds)]),
        "scaling": {
            products: consumer_backfill.main(
                ["--rows", str(args.scaling_rows), "--products", products, "--naive-rows", "2000"]
            )
            for products in args.scaling.split(",")
        },
    }
    if not args.skip_analysis:
        report["analysis_api"] = analysis_api.main([])  # 10 million rows: 10 to 25 more minutes
    summarize(report)
    write_json(args.out / "report.json", report)
    draw(report, args.out / "bench.png")
    print(f"\nreport: {args.out / 'report.json'}")
    return report


def summarize(report: dict[str, Any]) -> None:
    producer, backfill, live = report["producer"], report["backfill"], live_latency(report)
    rows = [
        ("producer messages/s", f"{producer['producer']['messages_per_s']:,.0f}",
         f"{producer['ratio_to_transport_bound']:.2f} x transport bound, "
         f"{producer['ratio_to_kafka_bound']:.2f} x Kafka bound"),
        ("producer latency p99 (received -> acked)",
         f"{producer['latency_s']['p99'] * 1000:.0f} ms", "<= bucket bound"),
        ("backfill rows/s", f"{backfill['consumer']['rows_per_s']:,}",
         f"{backfill['ratios']['consumer_to_load_data']:.2f} x LOAD DATA, "
         f"{backfill['ratios']['consumer_to_naive']:.0f} x naive"),
        ("live end-to-end p50 / p99", f"{live['p50'] * 1000:.0f} / {live['p99'] * 1000:.0f} ms",
         "receive -> row inserted, every row, 100 msg/s per product"),
    ]  # fmt: skip
    for run in report["live_cost"]["runs"]:
        cost, broker = run["us_per_tick"], run["cores"]["broker"]
        rows.append((f"live cost at {run['rate']:g} ticks/s ({run['feed_connections']} conn.)",
                     f"{cost['producer']:.0f} / {cost['consumer']:.0f} us",
                     f"CPU per tick, producer / consumer; broker {broker:.3f} cores"))  # fmt: skip
    for products, result in report["scaling"].items():
        rows.append((f"backfill with {products} products, rows/s",
                     f"{result['consumer']['rows_per_s']:,}",
                     f"{result['ratios']['consumer_to_load_data']:.2f} x LOAD DATA"))  # fmt: skip
    width = max(len(name) for name, _, _ in rows)
    print_table("summary", [(n.ljust(width), f"{v:>12}   {b}") for n, v, b in rows])


if __name__ == "__main__":
    main()
