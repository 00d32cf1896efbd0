"""The tape's rules as pure functions: a window's id range, covered buckets, tick stretches."""

from __future__ import annotations

from analysis.candle_sources import MAX_TICK_QUERIES, covered, uncovered_runs
from analysis.completeness import id_range


def test_id_range_widens_to_the_holes_next_to_the_window() -> None:
    assert id_range(9, 12, 20, 25) == (10, 24)  # holes 10-11 and 21-24 may lie inside
    assert id_range(None, 12, 20, None) == (12, 20)  # the tape starts and ends inside
    assert id_range(9, None, None, 15) == (10, 14)  # the window lies inside one hole
    assert id_range(9, None, None, 10) is None  # nothing can lie inside
    assert id_range(9, None, None, None) is None  # the tape ends before the window
    assert id_range(None, None, None, 4) is None  # ... or starts after it


def row(bucket: int, trades: int, low: int, high: int) -> tuple[object, ...]:
    return (bucket, "1", "1", "1", "1", "1", trades, low, high)


def test_a_bucket_is_covered_between_stored_neighbours_with_no_id_missing() -> None:
    buckets = [0, 60, 120, 180, 240]
    rows = [row(0, 3, 11, 13), row(60, 2, 14, 15), row(180, 1, 18, 18), row(240, 1, 19, 19)]
    # 0: neighbours 10 and 14, ids 11-13 stored. 60: 13 and 18, 16-17 missing. 120 (empty):
    # 15 and 18, 16-17 missing. 180: 15 and 19, same hole. 240: 18 and 20, complete.
    assert covered(buckets, rows, 10, 20) == {0, 240}
    assert covered(buckets, rows, None, None) == set()  # no neighbour: nothing proven
    full = [row(0, 3, 11, 13), row(180, 2, 14, 15)]
    assert covered(buckets, full, 10, 16) == {0, 60, 120, 180, 240}  # empty minutes too


def test_ticks_are_read_for_the_uncovered_stretches_only() -> None:
    buckets = list(range(0, 600, 60))
    assert uncovered_runs(buckets, set(buckets)) == []
    assert uncovered_runs(buckets, set(buckets) - {120, 180, 540}) == [(120, 180), (540, 540)]
    scattered = set(buckets[::2])
    assert len(buckets) // 2 > MAX_TICK_QUERIES
    assert uncovered_runs(buckets, scattered) == [(60, 540)]
