"""What the consumer sees of MySQL 8.4 (compose's `mysql:8.4`, RDS) that MariaDB, where every
other test runs, never shows it. README: Operations, MySQL 8.4 and MariaDB."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pymysql
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pymysql import _auth

from consumer.settings import ConsumerSettings
from consumer.sink import mysql_sink
from consumer.sink.connection import SQL_MODE
from consumer.sink.errors import BulkLoadUnavailable, SinkRejected, SinkUnavailable, from_mysql

ROOT = Path(__file__).resolve().parents[2]
# MySQL 8.0+ with local_infile=0 (its default) answers a LOCAL load with this error.
ER_CLIENT_LOCAL_FILES_DISABLED = 3948
MYSQL_REFUSAL = (
    ER_CLIENT_LOCAL_FILES_DISABLED,
    "Loading local data is disabled; this must be enabled on both the client and server sides",
)
# MariaDB's answer to the same, for comparison.
MARIADB_REFUSAL = (
    1148,
    "The used command is not allowed because the MariaDB server or client "
    "has disabled the local infile capability",
)


class RefusingConnection:
    """A connection to a server that refuses LOAD DATA LOCAL (the probe's empty load)."""

    def __init__(self, refusal: tuple[int, str]) -> None:
        self.refusal = refusal
        self.loads = 0

    def __enter__(self) -> RefusingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def load(self, statement: str, batch: bytes) -> None:
        self.loads += 1
        raise pymysql.err.OperationalError(*self.refusal)

    def rollback(self) -> None:
        pass


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


def settings(bulk_load: str) -> ConsumerSettings:
    return ConsumerSettings.model_validate({"mysql_bulk_load": bulk_load})


@pytest.mark.parametrize("refusal", [MYSQL_REFUSAL, MARIADB_REFUSAL], ids=["mysql", "mariadb"])
def test_refused_bulk_path_falls_back_to_insert_and_says_so_once(
    refusal: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = RefusingConnection(refusal)
    log = Recorder()
    monkeypatch.setattr(mysql_sink, "connect", lambda *_a, **_k: connection)
    monkeypatch.setattr(mysql_sink, "log", log)
    path = mysql_sink.WritePath(settings("auto"))
    assert [path.resolve() for _ in range(3)] == [mysql_sink.INSERT] * 3
    assert connection.loads == 1, "the server is asked once per process"
    assert len(log.lines) == 1
    event, fields = log.lines[0]
    assert event == "write path chosen" and fields["path"] == "insert"
    assert str(refusal[0]) in fields["reason"] and "refuses LOAD DATA LOCAL" in fields["reason"]


def test_refused_bulk_path_with_bulk_load_on_is_a_start_up_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mysql_sink, "connect", lambda *_a, **_k: RefusingConnection(MYSQL_REFUSAL))
    with pytest.raises(BulkLoadUnavailable, match=r"MYSQL_BULK_LOAD=on.*3948"):
        mysql_sink.WritePath(settings("on")).resolve()


def test_local_files_disabled_is_not_retried() -> None:
    """Retrying cannot turn local_infile on: the probe decides once, a write stops for good."""
    error = from_mysql(pymysql.err.OperationalError(*MYSQL_REFUSAL))
    assert isinstance(error, SinkRejected) and not error.retriable


def test_mysql8_idle_disconnect_is_retried() -> None:
    """MySQL 8.0.24+ closes an idle session with error 4031 (MariaDB just drops it)."""
    error = from_mysql(
        pymysql.err.OperationalError(
            4031, "The client was disconnected by the server because of inactivity."
        )
    )
    assert isinstance(error, SinkUnavailable) and error.retriable


def test_caching_sha2_password_without_tls_encrypts_with_cryptography() -> None:
    """MySQL 8.4 creates accounts with caching_sha2_password (mysql_native_password is off).
    Its first login without TLS sends the password RSA-encrypted with the server's key:
    PyMySQL does that with `cryptography` ([rsa] extra), which the consumer and analysis
    images carry."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    salt = os.urandom(20)
    sent = _auth.sha2_rsa_encrypt(b"ticker_writer", salt, public)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    clear = key.decrypt(sent, oaep)
    assert bytes(a ^ salt[i % 20] for i, a in enumerate(clear)) == b"ticker_writer\0"
    for image in ("consumer", "analysis"):
        lock = (ROOT / f"requirements-{image}.lock").read_text()
        assert re.search(r"^cryptography==", lock, re.M), f"{image} image cannot log in"


# Every sql_mode MySQL 8.4 accepts (its manual's list): NO_AUTO_CREATE_USER and the like,
# gone since 8.0, would make every connection's init_command fail.
MYSQL_84_SQL_MODES = {
    "ALLOW_INVALID_DATES", "ANSI_QUOTES", "ERROR_FOR_DIVISION_BY_ZERO", "HIGH_NOT_PRECEDENCE",
    "IGNORE_SPACE", "NO_AUTO_VALUE_ON_ZERO", "NO_BACKSLASH_ESCAPES", "NO_DIR_IN_CREATE",
    "NO_ENGINE_SUBSTITUTION", "NO_UNSIGNED_SUBTRACTION", "NO_ZERO_DATE", "NO_ZERO_IN_DATE",
    "ONLY_FULL_GROUP_BY", "PAD_CHAR_TO_FULL_LENGTH", "PIPES_AS_CONCAT", "REAL_AS_FLOAT",
    "STRICT_ALL_TABLES", "STRICT_TRANS_TABLES", "TIME_TRUNCATE_FRACTIONAL", "ANSI", "TRADITIONAL",
}  # fmt: skip


def test_the_writer_sql_mode_is_one_mysql_84_accepts() -> None:
    modes = set(SQL_MODE.split(","))
    assert modes <= MYSQL_84_SQL_MODES, modes - MYSQL_84_SQL_MODES
    # Strict mode on: without it MySQL 8 warns that NO_ZERO_DATE & co. do nothing.
    assert "STRICT_ALL_TABLES" in modes
