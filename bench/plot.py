"""The benchmark report as one PNG: throughput beside its bounds, latency, scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def draw(report: dict[str, Any], path: Path) -> None:
    figure, (producer_axis, backfill_axis, latency_axis, scaling_axis) = plt.subplots(
        1, 4, figsize=(18, 4.5)
    )
    producer = report["producer"]
    bars(
        producer_axis,
        "producer, messages/s",
        {
            "producer": producer["producer"]["messages_per_s"],
            "transport\nbound": producer["transport_bound_messages_per_s"],
            "Kafka\nbound": producer["kafka_bound_messages_per_s"],
        },
    )
    backfill = report["backfill"]
    bars(
        backfill_axis,
        "backfill, rows/s",
        {
            "consumer": backfill["consumer"]["rows_per_s"],
            "LOAD DATA\nbound": backfill["load_data"]["rows_per_s"],
            "naive": backfill["naive"]["rows_per_s"],
        },
    )
    live = report["live_latency"]["receive_to_insert_s"]
    acked = producer["latency_s"]
    bars(
        latency_axis,
        "latency, ms",
        {
            "producer\np50": acked["p50"] * 1000,
            "producer\np99": acked["p99"] * 1000,
            "end to end\np50": live["p50"] * 1000,
            "end to end\np95": live["p95"] * 1000,
            "end to end\np99": live["p99"] * 1000,
        },
    )
    scaling = report["scaling"]
    products = [int(count) for count in scaling]
    scaling_axis.plot(
        products,
        [r["consumer"]["rows_per_s"] for r in scaling.values()],
        marker="o",
        label="consumer",
    )
    scaling_axis.plot(
        products,
        [r["load_data"]["rows_per_s"] for r in scaling.values()],
        marker="s",
        label="LOAD DATA bound",
    )
    scaling_axis.set_title("backfill rows/s by number of products")
    scaling_axis.set_xscale("log")
    scaling_axis.set_xticks(products, [str(count) for count in products])
    scaling_axis.legend()
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
