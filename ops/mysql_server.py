"""The MySQL-compatible server at MYSQL_HOST:MYSQL_PORT, whichever runs it (one already there,
compose's MySQL, the private MariaDB): its admin account (MYSQL_ADMIN_*), readiness, schema."""

from __future__ import annotations

import os
from typing import Any

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from ops.processes import ROOT, say

HOST = os.environ.get("MYSQL_HOST") or "127.0.0.1"
PORT = int(os.environ.get("MYSQL_PORT") or "3306")
ADMIN_USER = os.environ.get("MYSQL_ADMIN_USER") or "root"
ADMIN_PASSWORD = os.environ.get("MYSQL_ADMIN_PASSWORD", "")


def admin_connection(database: str | None = None, **options: Any) -> Connection[Cursor]:
    """The account that may apply the schema and create databases (MYSQL_ADMIN_*)."""
    return pymysql.connect(
        host=HOST,
        port=PORT,
        user=ADMIN_USER,
        password=ADMIN_PASSWORD,
        database=database,
        **options,
    )


def ready() -> bool:
    """A real query answered by the admin account."""
    try:
        connection = admin_connection(connect_timeout=2)
    except pymysql.MySQLError:
        return False
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


def apply_schema() -> None:
    connection = admin_connection(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    with connection, connection.cursor() as cursor:
        cursor.execute((ROOT / "schema.sql").read_text())
        while cursor.nextset():
            pass
    say("schema.sql applied")
