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
        "latency ms: received -> acked, -> row",
        {
            "acked\np50": acked["p50"] * 1000,
            "acked\np99": acked["p99"] * 1000,
            "row\np50": live["p50"] * 1000,
            "row\np95": live["p95"] * 1000,
            "row\np99": live["p99"] * 1000,
        },
    )
    scaling = report["scaling"]
    positions = list(range(len(scaling)))
    for key, label, marker in (
        ("consumer", "consumer", "o"),
        ("load_data", "LOAD DATA bound", "s"),
    ):
        rates = [result[key]["rows_per_s"] for result in scaling.values()]
        scaling_axis.plot(positions, rates, marker=marker, label=label)
    scaling_axis.set_title("backfill rows/s by number of products")
    scaling_axis.set_xticks(positions, list(scaling))
    scaling_axis.set_ylim(bottom=0)
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
