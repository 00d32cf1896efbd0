"""Sets of trade ids as sorted, disjoint, inclusive ranges (a hole of a million ids is one)."""

from __future__ import annotations

from repair.holes import Hole


class IdRanges:
    def __init__(self) -> None:
        self._ranges: list[Hole] = []

    def add(self, first: int, last: int) -> None:
        if last < first:
            return
        merged: list[Hole] = []
        for held in self._ranges:
            if held.last + 1 < first or last + 1 < held.first:
                merged.append(held)
            else:
                first, last = min(first, held.first), max(last, held.last)
        merged.append(Hole(first, last))
        self._ranges = sorted(merged)

    def missing(self, hole: Hole) -> list[Hole]:
        """The parts of `hole` not in this set, lowest first."""
        parts: list[Hole] = []
        start = hole.first
        for held in self._ranges:
            if held.last < start or held.first > hole.last:
                continue
            if held.first > start:
                parts.append(Hole(start, held.first - 1))
            start = held.last + 1
        if start <= hole.last:
            parts.append(Hole(start, hole.last))
        return parts

    def __contains__(self, trade_id: int) -> bool:
        return any(held.first <= trade_id <= held.last for held in self._ranges)
