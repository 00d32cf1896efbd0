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
