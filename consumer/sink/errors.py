"""What can go wrong writing to a table (`order`, `trade`), and whether a retry can cure it.

Every failure leaves the sink as one `SinkError`; the writer retries those that are
`retriable` (with the partition paused) and stops the process on the others.
"""

from __future__ import annotations

import pymysql
from pymysql.constants import CR, ER

# Server codes pymysql.constants does not name.
ER_READ_ONLY_MODE = 1836  # MySQL: super_read_only during a fail-over
ER_CONNECTION_KILLED = 1927  # MariaDB
ER_CLIENT_INTERACTION_TIMEOUT = 4031  # MySQL 8: disconnected after idling too long

# The server is away, restarting, overloaded, failing over, or a lock conflict.
TRANSIENT_CODES = frozenset(
    {
        ER.CON_COUNT_ERROR,  # too many connections
        ER.SERVER_SHUTDOWN,
        ER.LOCK_WAIT_TIMEOUT,
        ER.LOCK_DEADLOCK,
        ER.OPTION_PREVENTS_STATEMENT,  # read-only during a fail-over
        ER_READ_ONLY_MODE,
        ER_CONNECTION_KILLED,
        ER_CLIENT_INTERACTION_TIMEOUT,
        CR.CR_CONN_HOST_ERROR,
        CR.CR_SERVER_GONE_ERROR,
        CR.CR_SERVER_LOST,
        CR.CR_SERVER_LOST_EXTENDED,
    }
)


class SinkError(Exception):
    """A write to a table failed; `retriable` says whether trying again can help."""

    retriable = False


class SinkUnavailable(SinkError):
    """The database is away or busy (connection lost, restarting, deadlock): retry."""

    retriable = True


class SinkRejected(SinkError):
    """The database refused for good: privileges, schema, or a statement it cannot run."""


class UnexpectedWarning(SinkError):
    """MySQL downgraded something other than a duplicate key to a warning (batch rolled back)."""


class BulkLoadUnavailable(SinkError):
    """MYSQL_BULK_LOAD=on, but the server (or its account) does not allow LOAD DATA LOCAL."""


class UnexpectedLocalRequest(SinkError):
    """The server asked for a local file while no batch was being loaded: nothing was sent."""


def from_mysql(error: BaseException) -> SinkError:
    """A PyMySQL (or socket) failure as a SinkError; the original stays its `__cause__`."""
    if isinstance(error, pymysql.err.InterfaceError | ConnectionError | TimeoutError):
        return SinkUnavailable(f"connection lost: {error!r}")
    code = error.args[0] if isinstance(error, pymysql.MySQLError) and error.args else None
    if isinstance(code, int) and code in TRANSIENT_CODES:
        return SinkUnavailable(f"{code} {error.args[-1]}")
    return SinkRejected(f"{code} {error.args[-1]}" if code is not None else repr(error))
