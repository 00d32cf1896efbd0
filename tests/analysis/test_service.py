"""The process: help, settings, start-up failures, SIGTERM, the read-only account, DB errors."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime

import pymysql
import pytest

from analysis.db import Database, timed_out
from analysis.settings import AnalysisSettings
from tests.analysis import dataset
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
from tests.factories import free_port, wait_for


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_prints_usage_settings_and_exit_codes(services: Services) -> None:
    done = run(analysis_env(services, "coinbase", ANALYSIS_PORT="1"), "--help")
    assert done.returncode == 0
    for word in ("usage: python -m analysis", "ANALYSIS_PORT", "MYSQL_USER", "exit codes"):
        assert word in done.stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ANALYSIS_PORT", "eighty"),
        ("ANALYSIS_PORT", "70000"),
        ("ANALYSIS_DB_POOL", "0"),
        ("MYSQL_DATABASE", "no;such"),
        ("ANALYSIS_QUERY_TIMEOUT_S", "-1"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line(
    services: Services, variable: str, value: str
) -> None:
    done = run(analysis_env(services, "coinbase", **{variable: value}))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], done.stderr


def test_an_unreachable_database_stops_start_up(services: Services) -> None:
    env = analysis_env(
        services, "coinbase", MYSQL_PORT=str(free_port()), ANALYSIS_PORT=str(free_port())
    )
    done = run(env)
    assert done.returncode == 2  # cannot start (3 means ticks undelivered)
    assert "did not answer" in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr


def test_the_reader_may_only_select(services: Services) -> None:
    connection = services.connect(READER, READER_PASSWORD, "coinbase")
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM `order` WHERE product_id = 'none'")
        cursor.execute("SELECT COUNT(*) FROM `trade` WHERE product_id = 'none'")
        for statement in (
            "INSERT INTO `order` (product_id, sequence) VALUES ('X-Y', 1)",
            "INSERT INTO `trade` (product_id, trade_id) VALUES ('X-Y', 1)",
            "UPDATE `order` SET price = 0 WHERE product_id = 'none'",
            "DELETE FROM `order` WHERE product_id = 'none'",
            "CREATE TABLE coinbase.scratch (id INT)",
        ):
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cursor.execute(statement)
            assert denied.value.args[0] in (1142, 1044), statement  # command denied
        cursor.execute("SHOW GRANTS")
        on_coinbase = [row[0] for row in cursor.fetchall() if "`coinbase`" in row[0]]
    assert sorted(on_coinbase) == [
        "GRANT SELECT ON `coinbase`.`order` TO `ticker_reader`@`%`",
        "GRANT SELECT ON `coinbase`.`trade` TO `ticker_reader`@`%`",
    ]


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


def test_the_server_stops_a_statement_at_the_query_timeout(services: Services) -> None:
    database = make_database(services)
    try:
        with services.admin() as connection:
            dataset.insert(connection, database, dataset.history_ticks())
        settings = AnalysisSettings(
            mysql_host=services.mysql_host,
            mysql_port=services.mysql_port,
            mysql_user=READER,
            mysql_password=READER_PASSWORD,
            mysql_database=database,
            analysis_query_timeout_s=0.000001,
            analysis_db_pool=1,
        )
        db = Database(settings)
        with pytest.raises(pymysql.err.MySQLError) as stopped:
            db.rows("SELECT COUNT(*) FROM `order` AS a JOIN `order` AS b JOIN `order` AS c")
        assert timed_out(stopped.value)
        # The connection went back to the pool and still works, under a longer limit too.
        assert db.rows("SELECT COUNT(*) FROM `order`", timeout_s=60)[0][0] == len(
            dataset.history_ticks()
        )
        db.close()
    finally:
        drop_database(services, database)


def test_ticks_are_recounted_in_the_background(services: Services) -> None:
    database = make_database(services)
    url, process = start(services, database, ANALYSIS_COUNT_CACHE_S="0")
    try:
        tick = dataset.Tick("BTC-USD", 1, datetime(2026, 9, 29, 13), "1", "1")
        with services.admin() as connection:
            dataset.insert(connection, database, [tick])

        def ticks() -> int:
            with urllib.request.urlopen(url + "/products", timeout=10) as response:
                return int(json.loads(response.read())[0]["ticks"])

        assert ticks() == 1  # the first count is made while the request waits
        with services.admin() as connection:
            dataset.insert(connection, database, [dataset.Tick("BTC-USD", 2, tick.time, "1", "1")])
        wait_for(lambda: ticks() == 2, 10, "the recount")
    finally:
        assert stop(process) == 0
        drop_database(services, database)
