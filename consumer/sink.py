"""Batch writes into `order`: one transaction per batch, idempotent on (product_id, sequence).

Why INSERT IGNORE and not an upsert: the writer's account may only INSERT and SELECT
(an upsert needs UPDATE), and a replayed tick must never change a stored row. The price
of IGNORE is that it also turns data errors into warnings; every value is validated
before it gets here, and each statement's warnings are checked against its duplicates:
any other warning rolls the batch back and stops the writer (a validation bug, loudly).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from pymysql.connections import Connection
from pymysql.cursors import Cursor

from consumer.decode import COLUMNS, Row

INSERT_PREFIX = "INSERT IGNORE INTO `order` ({}) VALUES ".format(", ".join(COLUMNS))
ROWS_PER_STATEMENT = 1000  # keeps each statement well under max_allowed_packet


class UnexpectedWarning(Exception):
    """MySQL downgraded something other than a duplicate key to a warning."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    duplicates: int


def write_batch(connection: Connection[Cursor], rows: Sequence[Row]) -> WriteResult:
    """Insert `rows` in one transaction and commit; duplicates are skipped, counted."""
    inserted = 0
    try:
        with connection.cursor() as cursor:
            for start in range(0, len(rows), ROWS_PER_STATEMENT):
                chunk = rows[start : start + ROWS_PER_STATEMENT]
                count = cursor.execute(INSERT_PREFIX + ",".join(map(sql_tuple, chunk)))
                if cursor.warning_count != len(chunk) - count:
                    raise UnexpectedWarning(show_warnings(cursor))
                inserted += count
        connection.commit()
    except BaseException:
        rollback_quietly(connection)
        raise
    return WriteResult(inserted=inserted, duplicates=len(rows) - inserted)


def sql_tuple(row: Row) -> str:
    """One row as an SQL tuple, without a general-purpose escaper (the hot path's main cost).

    Safe because `decode` only lets through: the writer's own product id (a configured
    `[A-Z0-9]+-[A-Z0-9]+`), ints, decimal strings of digits and one dot, `buy`/`sell`,
    DATETIME literals it formatted itself, and None. None of these can hold a quote or
    a backslash.
    """
    (
        product,
        sequence,
        trade_id,
        side,
        price,
        last_size,
        best_bid,
        best_bid_size,
        best_ask,
        best_ask_size,
        open_24h,
        volume_24h,
        low_24h,
        high_24h,
        volume_30d,
        time,
        received_at,
        partition,
        offset,
    ) = row
    return (
        f"('{product}',{sequence:d},{trade_id:d},'{side}','{price}','{last_size}','{best_bid}',"
        f"{quoted(best_bid_size)},'{best_ask}',{quoted(best_ask_size)},'{open_24h}',"
        f"'{volume_24h}','{low_24h}','{high_24h}','{volume_30d}','{time}',"
        f"{quoted(received_at)},{partition:d},{offset:d})"
    )


def quoted(value: object) -> str:
    return "NULL" if value is None else f"'{value}'"


def show_warnings(cursor: Cursor) -> str:
    cursor.execute("SHOW WARNINGS")
    notes = [f"{code} {message}" for _level, code, message in cursor.fetchall() if code != 1062]
    return "; ".join(notes[:5]) or "warnings other than duplicate keys"


def rollback_quietly(connection: Connection[Cursor]) -> None:
    # The connection may be gone; the server then rolls back on its own.
    with contextlib.suppress(Exception):
        connection.rollback()
