"""The process: help, settings, start-up failures, SIGTERM, the read-only account, DB errors."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pymysql
import pytest

from tests.analysis.conftest import (
    READER,
    READER_PASSWORD,
    analysis_env,
    drop_database,
    make_database,
    start,
    stop,
)
from tests.conftest import ROOT, Services
from tests.factories import free_port


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_help_prints_usage_settings_and_exit_codes(services: Services) -> None:
    done = run(analysis_env(services, "coinbase", ANALYSIS_PORT="1"), "--help")
    assert done.returncode == 0
    for word in ("usage: python -m analysis", "ANALYSIS_PORT", "MYSQL_USER", "exit codes"):
        assert word in done.stdout


@pytest.mark.parametrize(("variable", "value"), [
    ("ANALYSIS_PORT", "eighty"), ("ANALYSIS_PORT", "70000"), ("ANALYSIS_DB_POOL", "0"),
    ("MYSQL_DATABASE", "no;such"), ("ANALYSIS_QUERY_TIMEOUT_S", "-1"),
])
def test_a_bad_setting_stops_start_up_with_one_line(services: Services, variable: str,
                                                    value: str) -> None:
    done = run(analysis_env(services, "coinbase", **{variable: value}))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], done.stderr


def test_an_unreachable_database_stops_start_up(services: Services) -> None:
    env = analysis_env(services, "coinbase", MYSQL_PORT=str(free_port()),
                       ANALYSIS_PORT=str(free_port()))
    done = run(env)
    assert done.returncode == 3
    assert "did not answer" in done.stderr


def test_the_reader_may_only_select(services: Services) -> None:
    connection = pymysql.connect(host=services.mysql_host, port=services.mysql_port,
                                 user=READER, password=READER_PASSWORD, database="coinbase")
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM `order` WHERE product_id = 'none'")
        for statement in (
            "INSERT INTO `order` (product_id, sequence) VALUES ('X-Y', 1)",
            "UPDATE `order` SET price = 0 WHERE product_id = 'none'",
            "DELETE FROM `order` WHERE product_id = 'none'",
            "CREATE TABLE coinbase.scratch (id INT)",
        ):
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cursor.execute(statement)
            assert denied.value.args[0] in (1142, 1044), statement  # command denied
        cursor.execute("SHOW GRANTS")
        on_coinbase = [row[0] for row in cursor.fetchall() if "`coinbase`" in row[0]]
    assert on_coinbase == ["GRANT SELECT ON `coinbase`.`order` TO `ticker_reader`@`%`"]


def test_database_errors_are_503_with_a_reason_and_sigterm_exits_0(services: Services) -> None:
    database = make_database(services)
    url, process = start(services, database)
    try:
        with urllib.request.urlopen(url + "/products", timeout=10) as response:
            assert response.read() == b"[]"
        drop_database(services, database)  # the table vanishes under the running service
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(url + "/products/BTC-USD/ticker", timeout=10)
        assert failed.value.code == 503
        body = failed.value.read().decode()
        assert "database unavailable" in body and "\n" not in body
    finally:
        assert stop(process) == 0
        drop_database(services, database)
