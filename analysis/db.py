"""Read-only MySQL connections: a small bounded pool, decimals kept as the server's strings."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymysql
from pymysql.connections import Connection
from pymysql.constants import FIELD_TYPE
from pymysql.converters import conversions
from pymysql.cursors import Cursor

from analysis.settings import AnalysisSettings

# DECIMAL columns come back as the server's exact text, never through float or Decimal.
CONVERSIONS: dict[Any, Any] = {**conversions, FIELD_TYPE.NEWDECIMAL: str, FIELD_TYPE.DECIMAL: str}

# The server stopped a statement that ran past its time limit (MariaDB, MySQL).
TIMEOUT_CODES = frozenset({1969, 3024})

Row = tuple[Any, ...]


class PoolTimeout(Exception):
    """Every connection stayed busy for the whole query timeout."""


class Database:
    """At most `analysis_db_pool` connections; one is checked out per query."""

    def __init__(self, settings: AnalysisSettings) -> None:
        self._settings = settings
        self._idle: queue.LifoQueue[Connection[Cursor]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(settings.analysis_db_pool)

    def rows(
        self,
        sql: str,
        args: Sequence[object] | dict[str, object] = (),
        timeout_s: float | None = None,
    ) -> list[Row]:
        """Run one parameterised SELECT and return every row.

        `timeout_s` gives this statement a time limit other than ANALYSIS_QUERY_TIMEOUT_S.
        """
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
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    @contextmanager
    def _connection(self) -> Iterator[Connection[Cursor]]:
        if not self._slots.acquire(timeout=self._settings.analysis_query_timeout_s):
            raise PoolTimeout("no free database connection")
        try:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                connection = connect(self._settings)
            try:
                yield connection
            except pymysql.err.MySQLError as exc:
                # A broken link is dropped; an error about one statement leaves it usable.
                if link_broken(exc):
                    connection.close()
                else:
                    self._idle.put(connection)
                raise
            except BaseException:
                connection.close()
                raise
            else:
                self._idle.put(connection)
        finally:
            self._slots.release()


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
