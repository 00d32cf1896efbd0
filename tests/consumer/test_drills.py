"""The `make drill` drills (drills/core.py), smaller: the same code, the same verdict, on both
write paths. These are the consumer's outage tests too: kill -9 during a backlog, MariaDB
restarting and the broker down, each striking while rows are flowing; afterwards every row
equals its frame field by field and names the record it came from, every offset is committed
up to the topic's end, and both services exit 0 on SIGTERM."""

from __future__ import annotations

import pytest

from drills.core import DRILLS, log_path
from ops.pipeline import Pipeline

SIZE = 0.1  # of the full drill's counts and fault durations
# Feeds that outlast the fault: kill -9 needs a backlog through five restarts of the consumer
# (about a second each); the MariaDB restart and the broker stop must strike while rows still
# come, however slowly the consumer starts on a loaded machine (at 0.1 the broker drill's 5 s
# feed was once written whole by then, and at 0.5 the MariaDB drill's 7.5 s feed was written
# whole before the server was down: no writer met the restart).
SIZES = {"kill9": 0.5, "mariadb": 1.0, "broker": 0.25}
MID_STREAM = ("kill9", "mariadb", "broker")  # faults that strike while rows are flowing
# These stop the database or the broker: they run one at a time, on a private pair of their
# own (ops/run-tests.sh), beside the rest.
SHARED_SERVER = ("mariadb", "broker")


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "drill",
    [
        pytest.param(d, marks=[pytest.mark.exclusive] if d in SHARED_SERVER else [])
        for d in DRILLS
        if d != "broker"
    ],
)
def test_drill_loses_nothing_that_reached_the_producer(pipeline: Pipeline, drill: str) -> None:
    check(pipeline, drill)


@pytest.mark.exclusive
@pytest.mark.timeout(240)
# The broker's fault never reaches MySQL, so one write path is enough here (the suite's time);
# `make drill` and the MariaDB drill cover the paths.
@pytest.mark.parametrize("write_path", ["load_data"])
def test_broker_drill_loses_nothing_that_reached_the_producer(
    pipeline: Pipeline, write_path: str
) -> None:
    check(pipeline, "broker")


def check(pipeline: Pipeline, drill: str) -> None:
    """The drill's verdict: nothing lost, duplicated or wrong, offsets at the end, clean exits."""
    outcome = DRILLS[drill](pipeline, SIZES.get(drill, SIZE))
    assert outcome.ticks_delivered > 0
    assert outcome.rows_found == outcome.ticks_delivered, outcome
    assert (outcome.missing, outcome.unexpected, outcome.duplicates) == (0, 0, 0), outcome
    assert outcome.wrong_rows == 0, outcome
    assert outcome.offsets_behind == 0, outcome
    assert outcome.unclean_exits == 0, outcome
    if drill in MID_STREAM:
        assert 0 < outcome.rows_at_fault < outcome.ticks_delivered, outcome
    if drill == "mariadb":
        log = log_path(pipeline).read_text(errors="replace")
        assert "transient failure, retrying" in log and '"operation": "mysql"' in log, (
            "the writers should have retried the database"
        )
