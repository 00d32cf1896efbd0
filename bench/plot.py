"""The benchmark report as one PNG: throughput beside its bounds, latency, live cost, scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def live_latency(report: dict[str, Any]) -> dict[str, float]:
    """Receive -> row at 100 msg/s per product (the 300 ticks/s run)."""
    runs = report["live_cost"]["runs"]
    latency: dict[str, float] = next((r for r in runs if r["rate"] == 300), runs[-1])[
        "receive_to_insert_s"
    ]
    return latency


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
    runs = [r for r in report["live_cost"]["runs"] if r["feed_connections"] == 2]
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
