"""Counters for hot paths: plain integers, turned into Prometheus counters at scrape time.

A prometheus_client `Counter.inc()` takes a lock and costs about a microsecond; at tens of
thousands of frames a second that is a large share of the budget. Each Tally is written
by one thread only, so a dict update is enough.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import REGISTRY, CounterMetricFamily
from prometheus_client.registry import Collector


class Tally(Collector):
    """A counter with one label, e.g. per product; read as `values[label]`."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.values: defaultdict[str, int] = defaultdict(int)
        REGISTRY.register(self)

    def add(self, label_value: str, amount: int = 1) -> None:
        self.values[label_value] += amount

    def total(self) -> int:
        return sum(self.values.values())

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for label_value, count in list(self.values.items()):
            family.add_metric([label_value], count)
        yield family
