"""The `make drill` drills (drills/core.py), smaller: the same code, the same verdict."""

from __future__ import annotations

import pytest

from drills.core import DRILLS
from ops.pipeline import Pipeline

SIZE = 0.1  # of the full drill's counts and fault durations


@pytest.mark.timeout(240)
@pytest.mark.parametrize("drill", list(DRILLS))
def test_drill_loses_nothing_that_reached_the_producer(pipeline: Pipeline, drill: str) -> None:
    outcome = DRILLS[drill](pipeline, SIZE)
    assert outcome.ticks_delivered > 0
    assert outcome.rows_found == outcome.ticks_delivered, outcome
    assert (outcome.missing, outcome.unexpected, outcome.duplicates) == (0, 0, 0), outcome
