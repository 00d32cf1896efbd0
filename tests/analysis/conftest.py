"""Fixtures: a test copy of `order` filled with known ticks, read by a real `python -m analysis`."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from ops.http import http_get
from tests.analysis import dataset
from tests.analysis.dataset import TapeTrade, Tick
from tests.conftest import ROOT, Services, create_database, python_env
from tests.factories import free_port, wait_for

READER, READER_PASSWORD = "ticker_reader", "ticker_reader"


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)

    def exact(self) -> Any:
        """JSON with every number kept as its literal text (to check the exact digits)."""
        return json.loads(self.body, parse_float=str, parse_int=str)


@dataclass
class Analysis:
    """A running analysis service over a database of known ticks."""

    url: str
    database: str
    ticks: list[Tick]
    trades: list[TapeTrade]
    now: datetime  # when the live ticks were made (naive UTC)
    process: subprocess.Popen[bytes] = field(repr=False)

    def get(self, path: str) -> Reply:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return Reply(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.read(), dict(error.headers))


def make_database(services: Services) -> str:
    """Private copies of `order` and `trade` (same indexes) the read-only account may SELECT."""
    name = f"test_analysis_{uuid.uuid4().hex[:10]}"
    create_database(services, name)
    with services.admin() as connection, connection.cursor() as cursor:
        for table in ("order", "trade"):
            cursor.execute(f"GRANT SELECT ON `{name}`.`{table}` TO '{READER}'@'%'")
    return name


def drop_database(services: Services, name: str) -> None:
    with services.admin() as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def analysis_env(services: Services, database: str, **overrides: str) -> dict[str, str]:
    return python_env(
        {
            "MYSQL_HOST": services.mysql_host,
            "MYSQL_PORT": str(services.mysql_port),
            "MYSQL_USER": READER,
            "MYSQL_PASSWORD": READER_PASSWORD,
            "MYSQL_DATABASE": database,
            "ANALYSIS_HOST": "127.0.0.1",
            "LOG_FORMAT": "json",
            **overrides,
        }
    )


def start(
    services: Services, database: str, **overrides: str
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = analysis_env(services, database, ANALYSIS_PORT=str(port), **overrides)
    process = subprocess.Popen([sys.executable, "-m", "analysis"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"analysis exited with {process.returncode}")
        return http_get(url + "/healthz")[0] == 200

    wait_for(healthy, 30, "analysis /healthz")
    return url, process


def stop(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    return process.wait(timeout=30)


@pytest.fixture(scope="module")
def analysis(services: Services) -> Iterator[Analysis]:
    """History around T0 plus the last 30 hours of every product, ticks and trade tape, served
    by the real service."""
    database = make_database(services)
    now = datetime.now(UTC).replace(tzinfo=None)
    ticks = dataset.history_ticks() + dataset.live_ticks(now)
    trades = dataset.history_tape(ticks) + dataset.live_tape(ticks, now)
    with services.admin() as connection:
        dataset.insert(connection, database, ticks)
        dataset.insert_trades(connection, database, trades)
    url, process = start(services, database)
    try:
        yield Analysis(
            url=url, database=database, ticks=ticks, trades=trades, now=now, process=process
        )
    finally:
        assert stop(process) == 0
        drop_database(services, database)
