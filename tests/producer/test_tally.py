"""Tallies export exactly what prometheus_client's own metrics would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from producer.tally import HistogramTally, Tally

BUCKETS = (0.001, 0.005, 0.01, 0.05, 1, 5)


@given(st.lists(st.floats(min_value=0, max_value=10) | st.sampled_from(BUCKETS), max_size=50))
def test_histogram_tally_reads_like_a_prometheus_histogram(values: list[float]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    tally = HistogramTally("delivery_seconds", "Received to acknowledged", BUCKETS, ours)
    histogram = Histogram("delivery_seconds", "Received to acknowledged", buckets=BUCKETS,
                          registry=theirs)  # fmt: skip
    for value in values:  # values on a bound land in that bound's bucket in both
        tally.observe(value)
        histogram.observe(value)
    exported = [line for line in generate_latest(theirs).splitlines() if b"_created" not in line]
    assert generate_latest(ours).splitlines() == exported


def test_tally_counts_per_label() -> None:
    registry = CollectorRegistry()
    tally = Tally("frames_received", "Frames", "type", registry)
    tally.add("ticker")
    tally.add("ticker", 2)
    tally.add("heartbeat")
    assert tally.total() == 4
    assert registry.get_sample_value("frames_received_total", {"type": "ticker"}) == 3
