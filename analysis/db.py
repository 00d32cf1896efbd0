"""Read-only MySQL connections: a small bounded pool, decimals kept as the server's strings.

A pooled connection idle for PING_AFTER_S or more is pinged before it is used, and replaced
if the server has closed it (wait_timeout, a restart): see `Database._checkout`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymysql
from pymysql.connections import Connection
from pymysql.constants import FIELD_TYPE
from pymysql.converters import conversions
from pymysql.cursors import Cursor

from analysis.indexes import EXPECTED, NO_SUCH_INDEX, IndexHints
from analysis.settings import AnalysisSettings
from shared.logs import get_logger

# DECIMAL columns come back as the server's exact text, never through float or Decimal.
CONVERSIONS: dict[Any, Any] = {**conversions, FIELD_TYPE.NEWDECIMAL: str, FIELD_TYPE.DECIMAL: str}

# No such table (1146), or no SELECT on it (1142): an archive without the trade tape.
NO_TAPE_CODES = frozenset({1142, 1146})

# The server stopped a statement that ran past its time limit (MariaDB, MySQL).
TIMEOUT_CODES = frozenset({1969, 3024})

# Why PyMySQL's ping and not a pool library with pre-ping (SQLAlchemy's pool_pre_ping does the
# same ping on checkout): the pool here is already bounded and small, the ping is one
# round-trip (59 us on loopback, half the cheapest query's 116 us), and no new dependency is
# needed. It is sent only after an idle spell: wait_timeout is at least 1 s, so a connection
# used within the last half second (margin for the server's clock starting a round-trip
# earlier) cannot have been timed out; a link broken mid-stream (a restart, KILL) is still
# dropped when its query fails (`link_broken`).
PING_AFTER_S = 0.5

Row = tuple[Any, ...]
log = get_logger("analysis")


class PoolTimeout(Exception):
    """Every connection stayed busy for the whole query timeout."""


class Database:
    """At most `analysis_db_pool` connections; one is checked out per query."""

    def __init__(self, settings: AnalysisSettings) -> None:
        self._settings = settings
        # Each idle connection with the monotonic time it was returned.
        self._idle: queue.LifoQueue[tuple[Connection[Cursor], float]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(settings.analysis_db_pool)
        self._hints = IndexHints()
        self.tape = True  # `trade` is readable (else candles come from ticks alone)

    def check_indexes(self) -> frozenset[str]:
        """Read the indexes of `order` and `trade`; warn once about each expected one that is
        missing (its queries then run without the hint: slower, never refused). Returns those.
        Without a readable `trade` (an older schema) the API serves the ticker archive alone."""
        present = {str(row[2]) for row in self._rows("SHOW INDEX FROM `order`", (), None)}
        try:
            present |= {str(row[2]) for row in self._rows("SHOW INDEX FROM `trade`", (), None)}
        except pymysql.err.MySQLError as exc:
            if not exc.args or exc.args[0] not in NO_TAPE_CODES:
                raise
            if self.tape:
                log.warning(
                    "table `trade` unreadable: candles from ticks only; apply schema.sql",
                    error=str(exc.args[-1]),
                )
            self.tape = False
            present |= {name for name in EXPECTED if name.startswith("trade_")}
        else:
            self.tape = True
        for name in sorted(self._hints.set_present(present)):
            log.warning(
                "index missing: its queries run without it, slower; apply schema.sql",
                index=name,
                serves=EXPECTED[name],
            )
        return self._hints.missing

    def rows(
        self,
        sql: str,
        args: Sequence[object] | dict[str, object] = (),
        timeout_s: float | None = None,
    ) -> list[Row]:
        """Run one parameterised SELECT and return every row.

        `timeout_s` gives this statement a time limit other than ANALYSIS_QUERY_TIMEOUT_S.
        An index hint the table refuses (the index was dropped) is taken out and the query
        run again.
        """
        try:
            return self._rows(self._hints.apply(sql), args, timeout_s)
        except pymysql.err.MySQLError as exc:
            if not exc.args or exc.args[0] != NO_SUCH_INDEX:
                raise
        self.check_indexes()
        return self._rows(self._hints.apply(sql), args, timeout_s)

    def _rows(
        self, sql: str, args: Sequence[object] | dict[str, object], timeout_s: float | None
    ) -> list[Row]:
        with self._connection() as connection, connection.cursor() as cursor:
            if timeout_s is None:
                cursor.execute(sql, args)
                return list(cursor.fetchall())
            version = server_version(connection)
            cursor.execute(statement_timeout_sql(version, timeout_s))
            try:
                cursor.execute(sql, args)
                return list(cursor.fetchall())
            finally:
                default = self._settings.analysis_query_timeout_s
                cursor.execute(statement_timeout_sql(version, default))

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait()[0].close()
            except queue.Empty:
                return

    @contextmanager
    def _connection(self) -> Iterator[Connection[Cursor]]:
        if not self._slots.acquire(timeout=self._settings.analysis_query_timeout_s):
            raise PoolTimeout("no free database connection")
        try:
            connection = self._checkout()
            try:
                yield connection
            except pymysql.err.MySQLError as exc:
                # A broken link is dropped; an error about one statement leaves it usable.
                if link_broken(exc):
                    connection.close()
                else:
                    self._idle.put((connection, time.monotonic()))
                raise
            except BaseException:
                connection.close()
                raise
            else:
                self._idle.put((connection, time.monotonic()))
        finally:
            self._slots.release()

    def _checkout(self) -> Connection[Cursor]:
        """The most recently used idle connection, pinged if it sat idle long enough for the
        server to close it; a dead one is replaced, never served."""
        try:
            connection, returned = self._idle.get_nowait()
        except queue.Empty:
            return connect(self._settings)
        if time.monotonic() - returned < PING_AFTER_S or alive(connection):
            return connection
        connection.close()
        return connect(self._settings)


def alive(connection: Connection[Cursor]) -> bool:
    """One COM_PING. Not ping(reconnect=True): PyMySQL 2 deprecates it, and its reconnect
    would skip the statement time limit `connect` sets; a dead connection is replaced by a
    new one from `connect` instead."""
    try:
        connection.ping(reconnect=False)
    except (pymysql.err.MySQLError, OSError):
        return False
    return True


def link_broken(error: pymysql.err.MySQLError) -> bool:
    """The connection itself failed (client-side codes 2000-2999, killed, server away)."""
    if isinstance(error, pymysql.err.InterfaceError):
        return True
    code = error.args[0] if error.args else None
    return not isinstance(code, int) or 2000 <= code < 3000 or code in (1053, 1927, 4031)


def timed_out(error: BaseException) -> bool:
    """The server stopped the statement at the query timeout."""
    return (
        isinstance(error, pymysql.err.MySQLError)
        and bool(error.args)
        and error.args[0] in TIMEOUT_CODES
    )


def connect(settings: AnalysisSettings) -> Connection[Cursor]:
    """A UTC, autocommit connection whose statements the server stops after the timeout."""
    connection = pymysql.connect(
        **settings.mysql_connect_args(),
        autocommit=True,
        connect_timeout=5,
        read_timeout=int(settings.analysis_query_timeout_s) + 10,
        conv=CONVERSIONS,
        init_command="SET time_zone = '+00:00'",
    )
    with connection.cursor() as cursor:
        version = server_version(connection)
        cursor.execute(statement_timeout_sql(version, settings.analysis_query_timeout_s))
    return connection


def server_version(connection: Connection[Cursor]) -> str:
    """The version string the server sent at connect (says MariaDB or not)."""
    return str(connection.get_server_info())  # type: ignore[no-untyped-call]


def statement_timeout_sql(server_version: str, seconds: float) -> str:
    """MariaDB and MySQL name the per-statement time limit differently."""
    if "mariadb" in server_version.lower():
        return f"SET SESSION max_statement_time = {seconds:.6f}"
    return f"SET SESSION max_execution_time = {max(1, round(seconds * 1000))}"  # 0: no limit
