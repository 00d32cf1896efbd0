"""The seam between a writer and where its rows go.

A sink's `write` stores one batch in one transaction and returns only after it is
durable; the writer commits Kafka offsets only after that. Failures are `SinkError`s
that say whether a retry can help (consumer/sink/errors.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from consumer.sink.layout import Row


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    duplicates: int  # rows already stored (a replay): skipped, never changed


class Sink(Protocol):
    """Stores rows of one table; idempotent on its primary key (a replay changes nothing)."""

    def write(self, rows: list[Row]) -> WriteResult:
        """Store `rows` in one transaction and commit, or raise a SinkError (nothing stored)."""
        ...

    def close(self) -> None: ...


OrderSink = Sink  # the name `order`'s callers know
