"""Start-up checks that turn a permanent misconfiguration into one clear line, not a retry loop."""

from __future__ import annotations

import pymysql

from consumer.settings import ConsumerSettings
from consumer.sink import SinkError, WritePath
from consumer.sink.connection import connect
from consumer.sink.errors import from_mysql
from consumer.streams import streams


class PreflightError(Exception):
    """Something a retry won't fix: the table or the topic is not what the writer needs."""


def check_table(settings: ConsumerSettings) -> bool:
    """Each table written (`order`, and `trade` with the tape on) has every column the writer
    inserts; False if MySQL is away for now."""
    try:
        connection = connect(settings, local_infile=False)
    except pymysql.MySQLError as exc:
        if from_mysql(exc).retriable:
            return False  # the writers will wait for the database with backoff
        raise PreflightError(f"MySQL refused the connection: {exc.args[-1]}") from None
    with connection, connection.cursor() as cursor:
        for stream in streams(settings):
            table = stream.table
            try:
                cursor.execute(f"SELECT {table.column_list} FROM `{table.name}` LIMIT 0")
            except pymysql.MySQLError as exc:
                why = f"table `{table.name}` does not fit the writer: {exc.args[-1]}"
                raise PreflightError(why) from None
    return True


def choose_write_path(settings: ConsumerSettings) -> WritePath:
    """MYSQL_BULK_LOAD resolved now when MySQL answers (else by the first writer to reach it)."""
    path = WritePath(settings)
    if check_table(settings):
        try:
            path.resolve()
        except SinkError as exc:
            if not exc.retriable:
                raise PreflightError(str(exc)) from None
    return path
