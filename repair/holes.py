"""Holes in the tape: per product, the runs of trade ids missing from `trade` between two
stored ids. Trade ids rise by exactly 1 per product, so every missing id is one trade.

One query per product over the primary key (product_id, trade_id): LAG pairs each stored id
with the one before it, so the scan reads the index once and returns only the holes.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pymysql


class Hole(NamedTuple):
    """First and last missing trade id (inclusive), as the analysis API reports them."""

    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


_HOLES = """
SELECT previous_id + 1, trade_id - 1, TIMESTAMPDIFF(MICROSECOND, inserted_at, NOW(6)) FROM (
    SELECT trade_id, LAG(trade_id) OVER (ORDER BY trade_id) AS previous_id, inserted_at
    FROM `trade` WHERE product_id = %s AND trade_id >= %s
) AS stored
WHERE trade_id > previous_id + 1
ORDER BY trade_id
"""
_FIRST_SINCE = """
SELECT trade_id FROM `trade` WHERE product_id = %s AND time >= %s ORDER BY time, trade_id LIMIT 1
"""
_BOUNDS = "SELECT MIN(trade_id), MAX(trade_id) FROM `trade` WHERE product_id = %s"


# Errors retrying cannot fix: access denied (database, table), no such database or table.
PERMANENT_MYSQL_ERRORS = frozenset({1044, 1045, 1049, 1142, 1146})


def permanent(error: pymysql.err.MySQLError) -> bool:
    return bool(error.args) and error.args[0] in PERMANENT_MYSQL_ERRORS


class Tape:
    """Reads `trade` (SELECT only) on one connection, reopened when it breaks."""

    def __init__(self, connect_args: dict[str, Any]) -> None:
        self._args = connect_args | {"autocommit": True, "connect_timeout": 10}
        self._connection: pymysql.connections.Connection[Any] | None = None

    def _rows(self, query: str, *args: object) -> list[tuple[Any, ...]]:
        if self._connection is None:
            self._connection = pymysql.connect(**self._args)
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(query, args)
                return list(cursor.fetchall())
        except pymysql.err.OperationalError:
            self.close()
            raise

    def start(self, product: str, since: datetime | None) -> int | None:
        """The first stored id of the range to check: the first at or after `since`."""
        if since is None:
            return self.bounds(product)[0]
        rows = self._rows(_FIRST_SINCE, product, since.astimezone(UTC).replace(tzinfo=None))
        return int(rows[0][0]) if rows else None

    def bounds(self, product: str) -> tuple[int | None, int | None]:
        """The lowest and highest stored trade id (None, None: nothing stored)."""
        low, high = self._rows(_BOUNDS, product)[0]
        return (None if low is None else int(low), None if high is None else int(high))

    def holes(self, product: str, start: int) -> list[tuple[Hole, float]]:
        """Holes above `start`, each with the age in seconds of the row just above it (a
        young one may be the producer or consumer still writing)."""
        rows = self._rows(_HOLES, product, start)
        return [(Hole(int(first), int(last)), int(age) / 1e6) for first, last, age in rows]

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(pymysql.err.Error):
                self._connection.close()
            self._connection = None
