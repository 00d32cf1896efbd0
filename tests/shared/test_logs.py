"""RepeatedErrors: one line per kind per interval, at the level asked for."""

from __future__ import annotations

import time

from shared.logs import RepeatedErrors


class Recorder:
    """Stands in for a structlog logger: keeps (level, event, fields) of each call."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, object]]] = []

    def __getattr__(self, level: str) -> object:
        return lambda event, **fields: self.lines.append((level, event, fields))


def test_one_line_per_kind_per_interval_with_the_count_it_stands_for() -> None:
    log = Recorder()
    repeated = RepeatedErrors(log, "large frames", interval_s=0.2, level="warning")
    for size in range(5):
        repeated.add("received", size=size)
    repeated.add("other")  # its own kind, its own interval
    time.sleep(0.25)
    repeated.add("received", size=9)
    assert log.lines == [
        ("warning", "large frames", {"kind": "received", "count": 1, "size": 0}),
        ("warning", "large frames", {"kind": "other", "count": 1}),
        ("warning", "large frames", {"kind": "received", "count": 5, "size": 9}),
    ]


def test_a_burst_is_its_first_line_then_one_line_with_the_rest_at_flush() -> None:
    log = Recorder()
    errors = RepeatedErrors(log, "Kafka did not take ticks", interval_s=60)
    for _ in range(1000):
        errors.add("UNKNOWN_TOPIC_OR_PART")
    errors.add("_MSG_TIMED_OUT")
    errors.flush()  # at shutdown: what the interval held back
    event = "Kafka did not take ticks"
    assert log.lines == [
        ("error", event, {"kind": "UNKNOWN_TOPIC_OR_PART", "count": 1}),
        ("error", event, {"kind": "_MSG_TIMED_OUT", "count": 1}),
        ("error", event, {"kind": "UNKNOWN_TOPIC_OR_PART", "count": 999}),
    ]
