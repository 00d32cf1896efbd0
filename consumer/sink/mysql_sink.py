"""Batches into a MySQL table (`order`, `trade`): one transaction per batch, idempotent on
the table's primary key ((product_id, sequence) for `order`, (product_id, trade_id) for `trade`).

Two paths with the same guarantees:
- `load_data`: one `LOAD DATA LOCAL INFILE … IGNORE` per batch, streamed from memory
  (about half of the server's CPU per row of an INSERT); needs `local_infile` on the server.
- `insert`: multi-row `INSERT IGNORE`, 1000 rows a statement.

Why IGNORE and not an upsert: the writer's account may only INSERT and SELECT, and a
replayed tick must never change a stored row. IGNORE (and LOCAL) also turn data errors
into warnings; every value is validated before it gets here, and each statement's
warnings must equal its duplicates: anything else rolls the batch back and stops the
writer (a validation bug, loudly). The LOAD DATA path also checks that the server read
exactly one record per row.
"""

from __future__ import annotations

import contextlib
import threading

import pymysql
from pymysql.constants import ER

from consumer import metrics
from consumer.settings import ConsumerSettings
from consumer.sink.base import WriteResult
from consumer.sink.connection import BatchConnection, connect
from consumer.sink.errors import (
    BulkLoadUnavailable,
    SinkRejected,
    UnexpectedWarning,
    from_mysql,
)
from consumer.sink.layout import ORDER, Row, Table
from shared.logs import get_logger

log = get_logger(__name__)

ROWS_PER_STATEMENT = 1000  # keeps each statement well under max_allowed_packet


def insert_prefix(table: Table) -> str:
    return f"INSERT IGNORE INTO `{table.name}` ({table.column_list}) VALUES "


def load_statement(table: Table) -> str:
    # The file name is a label only: BatchConnection answers with the batch, whatever it says.
    return (
        f"LOAD DATA LOCAL INFILE 'batch' IGNORE INTO TABLE `{table.name}` CHARACTER SET ascii "
        "FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
        f"({table.column_list})"
    )


LOAD_STATEMENT = load_statement(ORDER)  # also the write-path probe (an empty batch)
INSERT, LOAD_DATA = "insert", "load_data"


class WritePath:
    """MYSQL_BULK_LOAD resolved once per process: `auto` probes the server the first time."""

    def __init__(self, settings: ConsumerSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._chosen: str | None = None

    @property
    def chosen(self) -> str | None:
        """The path in use, or None until the server has been reached once."""
        return self._chosen

    def resolve(self) -> str:
        """`insert` or `load_data`; raises SinkError (retriable while the server is away)."""
        with self._lock:
            if self._chosen is None:
                self._chosen, why = self._probe()
                log.info(
                    "write path chosen",
                    path=self._chosen,
                    bulk_load=self._settings.mysql_bulk_load,
                    reason=why,
                )
                metrics.WRITE_PATH.labels(path=self._chosen).set(1)
            return self._chosen

    def _probe(self) -> tuple[str, str]:
        """The path, and why: a server refusing LOCAL (MySQL 8's default) is named here, in
        the one line that says the consumer writes with INSERT instead."""
        if self._settings.mysql_bulk_load == "off":
            return INSERT, "MYSQL_BULK_LOAD=off"
        allowed, why = bulk_load_allowed(self._settings)
        if allowed:
            return LOAD_DATA, "the server allows LOAD DATA LOCAL"
        if self._settings.mysql_bulk_load == "on":
            raise BulkLoadUnavailable(f"MYSQL_BULK_LOAD=on, but the server refuses it: {why}")
        return INSERT, f"the server refuses LOAD DATA LOCAL: {why}"


def bulk_load_allowed(settings: ConsumerSettings) -> tuple[bool, str]:
    """Load an empty batch (rolled back): the only sure test that client and server allow it."""
    try:
        connection = connect(settings, local_infile=True)
    except (pymysql.MySQLError, OSError) as exc:
        raise from_mysql(exc) from exc
    with connection:
        try:
            connection.load(LOAD_STATEMENT, b"")
            connection.rollback()
        except (pymysql.MySQLError, OSError) as exc:
            error = from_mysql(exc)
            if error.retriable:
                raise error from exc
            return False, str(error)
    return True, "allowed"


class MySQLSink:
    """Writes one table; owns one connection (opened on first use, replaced after any failure)."""

    def __init__(self, settings: ConsumerSettings, path: WritePath, table: Table = ORDER) -> None:
        self._settings = settings
        self._path = path
        self._table = table
        self._insert_prefix = insert_prefix(table)
        self._load_statement = load_statement(table)
        self._connection: BatchConnection | None = None

    def write(self, rows: list[Row]) -> WriteResult:
        try:
            bulk = self._path.resolve() == LOAD_DATA
            if self._connection is None:
                self._connection = connect(self._settings, local_infile=bulk)
            connection = self._connection
            if bulk:
                text = self._table.tsv_lines.render(rows)
                inserted = load_rows(connection, self._load_statement, text, len(rows))
            else:
                inserted = insert_rows(connection, rows, self._insert_prefix, self._table)
            connection.commit()
        except BaseException as exc:
            self._discard()  # its state is unknown: the server rolls back what was open
            if isinstance(exc, pymysql.MySQLError | OSError):
                raise from_mysql(exc) from exc
            raise
        return WriteResult(inserted=inserted, duplicates=len(rows) - inserted)

    def close(self) -> None:
        self._discard()

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.rollback()
            with contextlib.suppress(Exception):
                connection.close()


MySQLOrderSink = MySQLSink  # the name `order`'s callers know


def insert_rows(connection: BatchConnection, rows: list[Row], prefix: str, table: Table) -> int:
    render = table.sql_values.render
    inserted = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            count = cursor.execute(prefix + render(chunk)[:-1])
            if cursor.warning_count != len(chunk) - count:
                raise UnexpectedWarning(show_warnings(connection))
            inserted += count
    return inserted


def load_rows(connection: BatchConnection, statement: str, text: str, rows: int) -> int:
    outcome = connection.load(statement, text.encode("ascii"))
    if outcome.records != rows:
        raise SinkRejected(f"LOAD DATA read {outcome.records} records of {rows} rows")
    if outcome.warnings != rows - outcome.inserted:
        raise UnexpectedWarning(show_warnings(connection))
    return outcome.inserted


def show_warnings(connection: BatchConnection) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW WARNINGS")
        rows = cursor.fetchall()
    notes = [f"{code} {text}" for _level, code, text in rows if code != ER.DUP_ENTRY]
    return "; ".join(notes[:5]) or "warnings other than duplicate keys"
