"""Exit codes of `python -m analysis`, idle connections the server closed, a missing index."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from ops.http import http_get
from shared.failures import EXIT_CODES_HELP
from tests.analysis import dataset
from tests.analysis.conftest import (
    READER,
    READER_PASSWORD,
    analysis_env,
    drop_database,
    make_database,
    stop,
)
from tests.analysis.test_service import run
from tests.conftest import ROOT, Services
from tests.factories import free_port, wait_for

COVERING = "order_product_time_price_size"
HISTORY = f"start={dataset.T0.isoformat()}Z&end={(dataset.T0 + timedelta(hours=5)).isoformat()}Z"
PATHS = (
    f"/products/BTC-USD/candles?granularity=60&{HISTORY}",
    f"/products/ETH-BTC/candles?granularity=300&{HISTORY}",
    "/products/BTC-USD/ticker",
    f"/coverage?product_id=BTC-USD&{HISTORY}",
    "/products",
)


@contextmanager
def serving(services: Services, database: str, log: Path, **overrides: str) -> Iterator[str]:
    """A real `python -m analysis` whose stderr goes to `log`; yields its URL, exits 0."""
    port = free_port()
    env = analysis_env(services, database, ANALYSIS_PORT=str(port), **overrides)
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "analysis"], cwd=ROOT, env=env, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, f"analysis exited with {process.returncode}"
        return http_get(url + "/healthz")[0] == 200

    try:
        wait_for(healthy, 30, "analysis /healthz")
        yield url
    finally:
        assert stop(process) == 0


def answers(url: str, paths: tuple[str, ...] = PATHS) -> list[tuple[int, bytes]]:
    """Every path at once (so the pool opens several connections): (status, body) each."""
    with ThreadPoolExecutor(len(paths)) as pool:
        return list(pool.map(lambda path: http_get(url + path)[:2], paths))


@pytest.fixture
def database(services: Services) -> Iterator[str]:
    """A private `order` with the history ticks (and the covering index, as schema.sql)."""
    name = make_database(services)
    with services.admin() as connection:
        dataset.insert(connection, name, dataset.history_ticks())
    yield name
    drop_database(services, name)


def test_help_shows_the_one_exit_code_table(services: Services) -> None:
    done = run(analysis_env(services, "coinbase"), "--help")
    assert done.returncode == 0
    assert EXIT_CODES_HELP in done.stdout


def test_a_taken_port_is_one_line_and_exit_2(services: Services) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run(analysis_env(services, "coinbase", ANALYSIS_PORT=str(port)))
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"port {port} is taken (set ANALYSIS_PORT): Address already in use"
    )
    assert "Traceback" not in done.stderr and "uvicorn" not in done.stderr.lower()


def test_a_missing_table_stops_start_up_with_2(services: Services) -> None:
    name = make_database(services)
    try:
        with services.admin() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE `{name}`.`order`")
        done = run(analysis_env(services, name, ANALYSIS_PORT=str(free_port())))
    finally:
        drop_database(services, name)
    assert done.returncode == 2
    last = done.stderr.splitlines()[-1]
    assert last.startswith("analysis cannot start: database") and "order" in last
    assert "Traceback" not in done.stderr


@contextmanager
def idle_timeout_user(services: Services, database: str, seconds: int) -> Iterator[str]:
    """A reader account whose sessions the server closes after `seconds` idle.

    wait_timeout has no per-account value, and lowering it GLOBAL would reach every session
    opened meanwhile on this shared server; init_connect (run for accounts without SUPER)
    lowers it for this one account only, and is restored after.
    """
    user = f"idle_{uuid.uuid4().hex[:8]}"
    with services.admin() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.init_connect")
        saved = cursor.fetchone()[0]  # type: ignore[index]
        if saved:
            pytest.skip(f"init_connect is in use on this server: {saved!r}")
        cursor.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{user}'")
        for table in ("order", "trade"):
            cursor.execute(f"GRANT SELECT ON `{database}`.`{table}` TO '{user}'@'%'")
        cursor.execute(
            "SET GLOBAL init_connect = %s",
            (
                f"SET SESSION wait_timeout = IF(USER() LIKE '{user}@%%', {seconds}, "
                "@@SESSION.wait_timeout)",
            ),
        )
    try:
        yield user
    finally:
        with services.admin() as connection, connection.cursor() as cursor:
            cursor.execute("SET GLOBAL init_connect = ''")
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def sessions(services: Services, user: str) -> int:
    with services.admin() as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (user,)
        )
        return int(cursor.fetchone()[0])  # type: ignore[index]


@pytest.mark.exclusive  # sets init_connect on the server
def test_connections_the_server_closed_when_idle_are_replaced_not_served(
    services: Services, database: str, tmp_path: Path
) -> None:
    with (
        idle_timeout_user(services, database, seconds=2) as user,
        serving(
            services, database, tmp_path / "analysis.log", MYSQL_USER=user, MYSQL_PASSWORD=user
        ) as url,
    ):
        first = answers(url)
        assert {status for status, _ in first} == {200}
        assert sessions(services, user) >= 1
        # The idle spell: the server closes every pooled connection (wait_timeout 2 s).
        wait_for(lambda: sessions(services, user) == 0, 15, "the server to close them")
        after = [answers(url) for _ in range(3)]
        assert [[status for status, _ in round_] for round_ in after] == [[200] * len(PATHS)] * 3
        assert after[0] == first


def test_without_the_covering_index_queries_answer_and_start_up_warns_once(
    services: Services, database: str, tmp_path: Path
) -> None:
    log = tmp_path / "analysis.log"
    with serving(services, database, log) as url:
        indexed = answers(url)
        assert {status for status, _ in indexed} == {200}
        with services.admin() as connection, connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE `{database}`.`order` DROP INDEX {COVERING}")
        assert answers(url) == indexed  # dropped under the running service: still answers
    with serving(services, database, log) as url:
        assert answers(url) == indexed  # started without it
    warnings = [json.loads(line) for line in log.read_text().splitlines() if '"warning"' in line]
    assert [(w["event"].split(":")[0], w["index"]) for w in warnings] == [
        ("index missing", COVERING)
    ] * 2  # once when it vanished, once at the second start
    assert "Traceback" not in log.read_text()


def test_the_reader_sees_index_names(services: Services, database: str) -> None:
    """The start-up check reads SHOW INDEX as the SELECT-only account."""
    connection = services.connect(READER, READER_PASSWORD, database)
    with connection, connection.cursor() as cursor:
        cursor.execute("SHOW INDEX FROM `order`")
        names = {row[2] for row in cursor.fetchall()}
    assert {COVERING, "order_product_time", "PRIMARY"} <= names


def test_without_the_trade_table_candles_come_from_ticks_and_start_up_warns(
    services: Services, database: str, tmp_path: Path
) -> None:
    """An archive from before the trade tape: the ticker API answers as before."""
    with services.admin() as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE `{database}`.`trade`")
    log = tmp_path / "analysis.log"
    start, end = dataset.T0, dataset.T0 + timedelta(hours=5)
    with serving(services, database, log) as url:
        status, body = http_get(url + PATHS[0])[:2]
        assert status == 200
        expected = dataset.candles(dataset.history_ticks(), "BTC-USD", 60, start, end)
        assert json.loads(body, parse_float=str, parse_int=str) == expected
        assert http_get(url + "/products/BTC-USD/trades")[:2] == (200, b"[]")
        assert http_get(url + "/products/NOPE-USD/trades")[0] == 404
        status, body = http_get(url + "/products/BTC-USD/completeness")[:2]
        assert status == 503 and b"trade tape" in body
    warnings = [json.loads(line) for line in log.read_text().splitlines() if '"warning"' in line]
    assert [w["event"].split(":")[0] for w in warnings] == ["table `trade` unreadable"]
