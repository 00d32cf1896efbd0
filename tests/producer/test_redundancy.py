"""Hot-hot feed connections end to end: one connection dropped every 2 s at 100 msg/s per
product; with two connections no tick is missing from the table, with one some are."""

from __future__ import annotations

import pytest

from drills.core import redundancy
from ops.pipeline import Pipeline

SIZE = 0.4  # 12 s of the drill's 30


@pytest.mark.timeout(240)
def test_two_connections_miss_nothing_one_connection_misses_ticks(pipeline: Pipeline) -> None:
    two = redundancy(pipeline, connections=2, size=SIZE)
    assert two.ticks_generated >= 3 * 1000
    assert two.lost == 0, two
    assert two.missed_by_feed == 0, two


@pytest.mark.timeout(240)
def test_one_connection_misses_the_ticks_made_while_it_reconnects(pipeline: Pipeline) -> None:
    one = redundancy(pipeline, connections=1, size=SIZE)
    assert one.lost == 0, one  # what reached the producer is all there
    assert one.missed_by_feed > 0, one
    assert one.rows_found == one.ticks_delivered < one.ticks_generated
