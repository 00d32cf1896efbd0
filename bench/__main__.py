"""`make bench`: every benchmark against the local real services, one JSON report, one plot.

The producer (against the transport and Kafka bounds), the consumer backfill (against
LOAD DATA and one insert per commit), the live cost and latency of the whole pipeline at
15, 150, 300 and 900 ticks/s (300 and 900 with the trade tape too), the backfill with more
products and the analysis API over 10 million rows. Every figure is printed beside its
bound from the same run. Writes <out>/report.json and <out>/bench.png (throughput beside
its bounds, latency, live cost, scaling).
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

from bench import analysis_api, consumer_backfill, live_cost, producer_throughput
from bench.report import parser, write_json

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


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
        report["analysis_api"] = analysis_api.main([])  # 10 million rows: 3 to 5 more minutes
    write_json(args.out / "report.json", report)
    draw(report, args.out / "bench.png")
    print(f"\nreport: {args.out / 'report.json'}")
    return report


def live_latency(report: dict[str, Any]) -> dict[str, float]:
    """Receive -> row at 100 msg/s per product (the 300 ticks/s run)."""
    runs = report["live_cost"]["runs"]
    found = (r for r in runs if r["rate"] == 300 and not r["tape"])
    return dict(next(found, runs[-1])["receive_to_insert_s"])


def draw(report: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(1, 5, figsize=(22, 4.5))
    producer, backfill, live = report["producer"], report["backfill"], live_latency(report)
    bars(axes[0], "producer, messages/s", {
        "producer": producer["producer"]["messages_per_s"],
        "transport\nbound": producer["transport_bound_messages_per_s"],
        "Kafka\nbound": producer["kafka_bound_messages_per_s"],
    })  # fmt: skip
    bars(axes[1], "backfill, rows/s", {
        "consumer": backfill["consumer"]["rows_per_s"],
        "LOAD DATA\nbound": backfill["load_data"]["rows_per_s"],
        "naive": backfill["naive"]["rows_per_s"],
    })  # fmt: skip
    acked = producer["latency_s"]
    bars(axes[2], "latency ms: received -> acked, -> row", {
        "acked\np50": acked["p50"] * 1000, "acked\np99": acked["p99"] * 1000,
        "row\np50": live["p50"] * 1000, "row\np95": live["p95"] * 1000,
        "row\np99": live["p99"] * 1000,
    })  # fmt: skip
    runs = [
        r for r in report["live_cost"]["runs"] if (r["feed_connections"], r["tape"]) == (2, False)
    ]
    labels = [f"{r['rate']:g}" for r in runs]
    for part, marker in (("producer", "o"), ("consumer", "s"), ("broker", "^"), ("mariadb", "v")):
        axes[3].plot(labels, [r["us_per_tick"][part] for r in runs], marker=marker, label=part)
    axes[3].set_title("live CPU µs per tick by ticks/s")
    axes[3].set_yscale("log")
    axes[3].legend()
    scaling = report["scaling"]
    for key, label, marker in (("consumer", "consumer", "o"), ("load_data", "LOAD DATA", "s")):
        rates = [result[key]["rows_per_s"] for result in scaling.values()]
        axes[4].plot(list(scaling), rates, marker=marker, label=label)
    axes[4].set_title("backfill rows/s by number of products")
    axes[4].set_ylim(bottom=0)
    axes[4].legend()
    machine = report["machine"]
    figure.suptitle(f"{machine['date']}, {machine['cpus']} cores, Python {machine['python']}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)


def bars(axis: Any, title: str, values: dict[str, float]) -> None:
    axis.bar(list(values), list(values.values()), color=["#2b6cb0"] + ["#a0aec0"] * 4)
    axis.set_title(title)
    for index, value in enumerate(values.values()):
        axis.annotate(f"{value:,.0f}", (index, value), ha="center", va="bottom")


if __name__ == "__main__":
    main()
