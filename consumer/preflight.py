"""Start-up checks that turn a permanent misconfiguration into one clear line, not a retry loop."""

from __future__ import annotations

import pymysql

from consumer.decode import COLUMNS
from shared import mysql
from shared.settings import ConsumerSettings


class PreflightError(Exception):
    """Something a retry won't fix: the table or the topic is not what the writer needs."""


def check_table(settings: ConsumerSettings) -> None:
    """The `order` table exists with every column the writer inserts, and we may insert."""
    try:
        connection = mysql.connect(settings)
    except pymysql.MySQLError as exc:
        if mysql.is_transient(exc):
            return  # the writers will wait for the database with backoff
        raise PreflightError(f"MySQL refused the connection: {exc.args[-1]}") from None
    with connection, connection.cursor() as cursor:
        try:
            cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM `order` LIMIT 0")
        except pymysql.MySQLError as exc:
            raise PreflightError(f"table `order` does not fit the writer: {exc.args[-1]}") from None
