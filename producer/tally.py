"""Counters for hot paths: plain integers, turned into Prometheus metrics at scrape time.

A prometheus_client `Counter.inc()` or `Histogram.observe()` takes a lock and costs a
microsecond or more; at thousands of frames a second that is a large share of the budget.
Each tally is written by one thread only, so updating a dict or a list is enough.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Sequence

from prometheus_client.core import REGISTRY, CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


class Tally(Collector):
    """A counter with one label, e.g. per product; read as `values[label]`."""

    def __init__(
        self, name: str, documentation: str, label: str, registry: CollectorRegistry = REGISTRY
    ) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.values: defaultdict[str, int] = defaultdict(int)
        registry.register(self)

    def add(self, label_value: str, amount: int = 1) -> None:
        self.values[label_value] += amount

    def total(self) -> int:
        return sum(self.values.values())

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for label_value, count in list(self.values.items()):
            family.add_metric([label_value], count)
        yield family


class HistogramTally(Collector):
    """A histogram without labels, exported exactly as prometheus_client's `Histogram`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # bucket `le` holds value <= bound
        self.sum += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        counts, total, cumulative = list(self.counts), self.sum, 0
        buckets = []
        for bound, count in zip((*map(_le, self.bounds), "+Inf"), counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)


def _le(bound: float) -> str:
    return repr(float(bound))  # as prometheus_client writes bucket bounds
