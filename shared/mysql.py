"""MySQL connections for the writers, and which errors are worth retrying."""

from __future__ import annotations

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from shared.settings import ConsumerSettings

# Worth retrying: the server is away, restarting, overloaded, or a lock conflict.
TRANSIENT_CODES = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1205,  # lock wait timeout
        1213,  # deadlock
        1290,
        1836,  # read-only (fail-over in progress)
        1927,  # connection killed
        2003,
        2006,
        2013,
        2055,  # cannot connect / gone away / lost connection
        4031,  # disconnected by the server for inactivity
    }
)


def connect(settings: ConsumerSettings) -> Connection[Cursor]:
    """A connection in UTC and strict mode, transactions explicit."""
    ssl = {"ca": settings.mysql_ssl_ca} if settings.mysql_ssl_ca else None
    return pymysql.connect(
        host=settings.mysql_host,
        port=settings.mysql_port,
        user=settings.mysql_user,
        password=settings.mysql_password.get_secret_value(),
        database=settings.mysql_database,
        autocommit=False,
        connect_timeout=5,
        read_timeout=60,
        write_timeout=60,
        ssl=ssl,
        init_command="SET time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,"
        "NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    )


def is_transient(error: BaseException) -> bool:
    """True for errors a retry can cure; false for schema, privilege or data errors."""
    if isinstance(error, pymysql.err.InterfaceError):
        return True  # the connection object is closed: reconnect
    if isinstance(error, pymysql.err.MySQLError) and error.args:
        code = error.args[0]
        return isinstance(code, int) and code in TRANSIENT_CODES
    return isinstance(error, ConnectionError | TimeoutError)
