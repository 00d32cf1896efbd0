"""MySQL 8.4 and MariaDB name the analysis service's per-statement time limit differently."""

from __future__ import annotations

import pytest

from analysis.db import statement_timeout_sql


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        # MySQL: milliseconds, SELECT only (all the service runs); 0 would mean no limit.
        ("8.4.3", "SET SESSION max_execution_time = 5000"),
        ("8.0.40-0ubuntu0.22.04.1", "SET SESSION max_execution_time = 5000"),
        # MariaDB: seconds, any statement.
        ("10.11.6-MariaDB-0+deb12u1", "SET SESSION max_statement_time = 5.000000"),
        ("5.5.5-10.11.6-MariaDB", "SET SESSION max_statement_time = 5.000000"),
    ],
)
def test_statement_time_limit_follows_the_server(version: str, expected: str) -> None:
    assert statement_timeout_sql(version, 5) == expected


def test_a_sub_millisecond_limit_stays_a_limit_on_mysql() -> None:
    assert statement_timeout_sql("8.4.3", 0.0001) == "SET SESSION max_execution_time = 1"
