"""schema.sql runs on MySQL 8.4 (compose's first start applies it) as on MariaDB (the tests):
only statements both accept. README: Operations, MySQL 8.4 and MariaDB."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def statements() -> list[str]:
    text = re.sub(r"--[^\n]*", "", (ROOT / "schema.sql").read_text())
    return [" ".join(part.split()) for part in text.split(";") if part.strip()]


def test_no_mariadb_only_syntax() -> None:
    for statement in statements():
        upper = statement.upper()
        # MySQL has IF NOT EXISTS for tables, databases and users, not for indexes/columns.
        assert not re.search(r"(CREATE|ADD) (UNIQUE )?(INDEX|KEY|COLUMN) IF NOT EXISTS", upper)
        assert "CREATE OR REPLACE" not in upper, statement
        assert "IDENTIFIED VIA" not in upper, statement  # MariaDB's plugin syntax


def test_accounts_use_the_servers_default_plugin() -> None:
    """8.4 turns mysql_native_password off: an account pinned to it could not log in."""
    for statement in statements():
        assert "MYSQL_NATIVE_PASSWORD" not in statement.upper(), statement


def test_every_grant_names_an_account_created_before_it() -> None:
    """MySQL 8 no longer creates an account by GRANT."""
    created: set[str] = set()
    for statement in statements():
        if found := re.match(r"CREATE USER IF NOT EXISTS ('[^']+'@'[^']+')", statement):
            created.add(found.group(1))
        elif statement.upper().startswith("GRANT "):
            account = statement.rsplit(" TO ", 1)[1].strip()
            assert account in created, statement


def test_collation_is_explicit() -> None:
    """MySQL 8.4's default collation is utf8mb4_0900_ai_ci, MariaDB's another: the schema
    names utf8mb4_bin, so product ids compare byte for byte on both."""
    assert any(s.startswith("CREATE DATABASE") and "COLLATE utf8mb4_bin" in s for s in statements())


def test_the_analysis_index_is_added_through_information_schema() -> None:
    """No CREATE INDEX IF NOT EXISTS on MySQL: a prepared statement adds it only when missing."""
    joined = " ".join(statements())
    assert "FROM information_schema.statistics" in joined
    assert "PREPARE analysis_index FROM @analysis_index" in joined
