"""The writers' MySQL connection: UTC, strict, explicit transactions, and a LOCAL INFILE
answer that can only ever send the batch being loaded.

A client with LOCAL enabled normally sends whatever file the server names, so a rogue or
compromised server could read the consumer's files. `BatchConnection` never opens a path:
the server's LOCAL request is answered with the in-memory batch of the `load` call in
progress, whatever file name it asks for, and with nothing at all outside of one.

That answer replaces two private methods of PyMySQL (pyproject.toml pins the releases they
were read from). A release that renamed either would silently hand LOCAL requests back to
PyMySQL's own handler, which opens the named path; so importing this module fails instead
(`missing_hooks`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql
from pymysql.connections import Connection, MySQLResult
from pymysql.constants import CR
from pymysql.cursors import Cursor
from pymysql.err import OperationalError

from consumer.settings import ConsumerSettings
from consumer.sink.errors import UnexpectedLocalRequest

PACKET_BYTES = 256 * 1024  # each data packet of the streamed batch
RECORDS = re.compile(rb"Records: (\d+)")
SQL_MODE = (
    "STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION"
)


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    inserted: int
    warnings: int
    records: int  # lines the server read from the batch


if TYPE_CHECKING:  # PyMySQL's Connection is generic only in its type stubs
    _Connection = Connection[Cursor]
else:
    _Connection = Connection


class BatchConnection(_Connection):
    """A PyMySQL connection whose LOCAL INFILE requests get the batch in hand, or nothing."""

    _batch: bytes | None = None

    def load(self, statement: str, batch: bytes) -> LoadOutcome:
        """Run a `LOAD DATA LOCAL INFILE` statement with `batch` as the file's content."""
        self._batch = batch
        try:
            with self.cursor() as cursor:
                inserted = cursor.execute(statement)
                warnings = cursor.warning_count
        finally:
            self._batch = None
        message = self._result.message if self._result is not None else None
        found = RECORDS.search(message if isinstance(message, bytes) else b"")
        return LoadOutcome(inserted, warnings, int(found.group(1)) if found else -1)

    def take_batch(self) -> bytes | None:
        batch, self._batch = self._batch, None  # one answer per load
        return batch

    # PyMySQL builds its result reader here; ours answers LOCAL requests from memory.
    def _read_query_result(self, unbuffered: bool = False) -> int:
        self._result: MySQLResult | None = None
        result = _BatchResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return result.affected_rows or 0


class _BatchResult(MySQLResult):
    def _read_load_local_packet(self, first_packet: Any) -> None:
        connection = self.connection
        assert isinstance(connection, BatchConnection)
        batch = connection.take_batch()  # the requested file name is never looked at
        try:
            if batch:
                view = memoryview(batch)
                for start in range(0, len(view), PACKET_BYTES):
                    connection.write_packet(view[start : start + PACKET_BYTES])
        finally:
            connection.write_packet(b"")  # end of the "file"
            answer = connection._read_packet()  # type: ignore[no-untyped-call]
        if not answer.is_ok_packet():
            raise OperationalError(CR.CR_COMMANDS_OUT_OF_SYNC, "Commands Out of Sync")
        self._read_ok_packet(answer)  # type: ignore[attr-defined]
        if batch is None:
            raise UnexpectedLocalRequest("the server asked for a local file outside a batch load")


def missing_hooks(connection: type[Any], result: type[Any]) -> list[str]:
    """What of PyMySQL's internals `BatchConnection` relies on is gone: each as `Class.name`.

    An override is in effect only while the base class still has the method and its own
    callers still call it by that name (read from their bytecode, so no source is needed).
    """
    expected: list[tuple[type[Any], str, tuple[str, ...]]] = [
        (connection, "_read_query_result", ("query", "next_result")),
        (result, "_read_load_local_packet", ("read", "init_unbuffered_query")),
        (result, "_read_ok_packet", ()),
        (connection, "_read_packet", ()),
        (connection, "write_packet", ()),
    ]
    missing = []
    for owner, name, callers in expected:
        if not callable(getattr(owner, name, None)):
            missing.append(f"{owner.__name__}.{name}")
        for caller in callers:
            code = getattr(getattr(owner, caller, None), "__code__", None)
            if code is None or name not in code.co_names:
                missing.append(f"{owner.__name__}.{caller} -> {name}")
    return missing


_missing = missing_hooks(Connection, MySQLResult)
if _missing:
    raise ImportError(
        f"PyMySQL {pymysql.VERSION_STRING} lacks what the LOCAL INFILE override of "
        f"consumer/sink/connection.py replaces ({', '.join(_missing)}); "
        "install the PyMySQL range pinned in pyproject.toml"
    )


def connect(settings: ConsumerSettings, local_infile: bool) -> BatchConnection:
    """A connection in UTC and strict mode, transactions explicit; LOCAL only if asked."""
    return BatchConnection(
        **settings.mysql_connect_args(),
        autocommit=False,
        connect_timeout=5,
        read_timeout=60,
        write_timeout=60,
        local_infile=local_infile,
        init_command=f"SET time_zone = '+00:00', sql_mode = '{SQL_MODE}'",
    )
