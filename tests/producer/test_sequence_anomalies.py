"""Every real tick is kept whatever its sequence: out-of-order ticks, a stray huge sequence
and a sequence reset go through simulator -> producer -> Kafka -> consumer -> MariaDB."""

from __future__ import annotations

import pytest

from drills.core import nothing, run_drill
from ops.pipeline import Pipeline
from simulator import SimulatorConfig


@pytest.mark.timeout(180)
@pytest.mark.parametrize("connections", ["1", "2"])
def test_late_stray_and_reset_sequences_are_all_rows_once(
    pipeline: Pipeline, connections: str
) -> None:
    config = SimulatorConfig(
        products=pipeline.products,
        rate=200,
        count=600,
        seed=31,
        out_of_order_every=7,
        stray_sequence_after=100,
        sequence_reset_after=300,
    )
    outcome = run_drill(
        pipeline, "sequence anomalies", config, nothing, FEED_CONNECTIONS=connections
    )
    assert outcome.ticks_generated == 3 * 600
    assert outcome.rows_found == outcome.ticks_generated, outcome
    assert outcome.lost == 0 and outcome.missed_by_feed == 0, outcome
    # The stray tick is a row too; the reset's low sequences did not collide with old ones.
    assert outcome.duplicates == 0
