"""The MySQL sink against real MariaDB, on both write paths: exact values, idempotent
replay, rollback on any warning but a duplicate, and LOCAL INFILE requests answered
only with the batch being loaded, whatever file the server names."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pymysql.connections
import pytest

from consumer.decode import decode
from consumer.settings import ConsumerSettings
from consumer.sink import LOAD_DATA, MySQLOrderSink, Row, WritePath
from consumer.sink.connection import connect, missing_hooks
from consumer.sink.errors import BulkLoadUnavailable, SinkError, UnexpectedLocalRequest
from consumer.sink.layout import COLUMN_LIST, TSV_LINES
from consumer.sink.mysql_sink import INSERT
from shared.models import DECIMAL_FIELDS
from tests.conftest import ROOT, Pipeline
from tests.consumer.harness import Service
from tests.factories import fatal_line, row_count, ticker

EXTREMES = {
    "price": "99999999999999999999.999999999999999999",  # 20 + 18 digits: the column's edge
    "last_size": "0.000000000000000001",
    "best_bid": "0",
    "best_ask": "12345678901234567890",
    "volume_30d": "0.100000000000000000",
}


@pytest.fixture
def settings(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> ConsumerSettings:
    for name, value in pipeline.env().items():
        monkeypatch.setenv(name, value)
    return ConsumerSettings()


@pytest.fixture
def sink(settings: ConsumerSettings) -> Iterator[MySQLOrderSink]:
    made = MySQLOrderSink(settings, WritePath(settings))
    yield made
    made.close()


def rows(count: int, first: int = 1, **fields: object) -> list[Row]:
    out = []
    for n in range(count):
        frame = ticker("BTC-USD", first + n, None, **fields)
        row = decode(frame, 10**18 + n, "BTC-USD", 1, n)
        assert isinstance(row, dict), row
        out.append(row)
    return out


def stored(pipeline: Pipeline) -> dict[int, tuple[object, ...]]:
    columns = ", ".join(DECIMAL_FIELDS)
    found = pipeline.rows(f"SELECT sequence, {columns} FROM `order` ORDER BY sequence")
    return {int(str(row[0])): tuple(row[1:]) for row in found}


def test_the_path_asked_for_is_the_path_used(settings: ConsumerSettings, write_path: str) -> None:
    path = WritePath(settings)
    sink = MySQLOrderSink(settings, path)
    try:
        assert sink.write(rows(2)).inserted == 2
    finally:
        sink.close()
    assert path.chosen == write_path


def test_values_are_stored_exactly_and_a_replay_changes_nothing(
    sink: MySQLOrderSink, pipeline: Pipeline
) -> None:
    batch = rows(50, 1, **EXTREMES) + rows(10, 100, best_bid_size=None, best_ask_size=None)
    result = sink.write(batch)
    assert (result.inserted, result.duplicates) == (60, 0)
    found = stored(pipeline)
    for row in batch:
        expected = tuple(
            None if row.get(name) is None else Decimal(str(row[name])) for name in DECIMAL_FIELDS
        )
        assert found[int(str(row["sequence"]))] == expected
    replay = sink.write(batch[::-1])
    assert (replay.inserted, replay.duplicates) == (0, 60)
    assert stored(pipeline) == found


# Values the server would round, truncate or refuse with only a warning under IGNORE/LOCAL:
# they never get past decoding, and the sink refuses them too.
UNFIT = {
    "19 decimals": ("price", "0.1234567890123456789"),
    "21 integer digits": ("price", "1" * 21),
    "not a number": ("best_bid", "1.2.3"),
    "impossible date": ("time", "2026-02-30 00:00:00.000000"),
}


@pytest.mark.parametrize("case", list(UNFIT))
def test_a_value_that_would_not_be_stored_exactly_rolls_back_the_whole_batch(
    sink: MySQLOrderSink, pipeline: Pipeline, case: str
) -> None:
    column, value = UNFIT[case]
    batch = rows(20)
    batch[7][column] = value
    with pytest.raises(SinkError) as raised:
        sink.write(batch)
    assert not raised.value.retriable, raised.value
    assert row_count(pipeline) == 0, "good rows of the failed batch were committed"
    assert sink.write(rows(20)).inserted == 20  # the sink recovers with a new connection


def load_statement(file_name: str) -> str:
    return (
        f"LOAD DATA LOCAL INFILE '{file_name}' IGNORE INTO TABLE `order` CHARACTER SET ascii "
        f"({COLUMN_LIST})"
    )


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file a rogue server might ask for, holding a row that must never be loaded."""
    path = tmp_path / "secret.tsv"
    path.write_text(TSV_LINES.render(rows(1, first=999_999)))
    return path


def test_a_local_request_gets_only_the_batch_whatever_file_it_names(
    settings: ConsumerSettings, pipeline: Pipeline, secret: Path
) -> None:
    batch = rows(3)
    with connect(settings, local_infile=True) as connection:
        for name in (str(secret), "/etc/passwd"):
            outcome = connection.load(load_statement(name), TSV_LINES.render(batch).encode())
            assert outcome.records == 3
        connection.commit()
    assert sorted(stored(pipeline)) == [1, 2, 3]


def test_a_local_request_outside_a_batch_load_gets_nothing(
    settings: ConsumerSettings, pipeline: Pipeline, secret: Path
) -> None:
    with connect(settings, local_infile=True) as connection:
        with pytest.raises(UnexpectedLocalRequest), connection.cursor() as cursor:
            cursor.execute(load_statement(str(secret)))
        connection.commit()
    assert row_count(pipeline) == 0


def test_the_pymysql_installed_calls_the_methods_the_connection_overrides() -> None:
    assert missing_hooks(pymysql.connections.Connection, pymysql.connections.MySQLResult) == []


def test_a_renamed_or_uncalled_hook_is_missing() -> None:
    class Result(pymysql.connections.MySQLResult):
        def read(self) -> None:  # a release that reads LOCAL requests some other way
            pass

    class Renamed:  # a release whose connection lost the method and one of its callers
        query = pymysql.connections.Connection.query

    found = missing_hooks(Renamed, Result)
    assert "Renamed._read_query_result" in found
    assert "Renamed.next_result -> _read_query_result" in found
    assert "Renamed.query -> _read_query_result" not in found  # still calls it
    assert "Result.read -> _read_load_local_packet" in found
    assert "Result.init_unbuffered_query -> _read_load_local_packet" not in found


@pytest.mark.parametrize(
    ("owner", "name"),
    [("Connection", "_read_query_result"), ("MySQLResult", "_read_load_local_packet")],
)
def test_the_import_fails_when_pymysql_renamed_an_overridden_method(owner: str, name: str) -> None:
    rename = (
        "import pymysql.connections as c\n"
        f"cls = c.{owner}\n"
        f"setattr(cls, '{name}_renamed', cls.{name}); delattr(cls, '{name}')\n"
        "import consumer.sink.connection\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", rename], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "ImportError: PyMySQL" in done.stderr
    assert f"{owner}.{name}" in done.stderr


@pytest.fixture
def local_infile_off(pipeline: Pipeline) -> Iterator[None]:
    with pipeline.services.admin() as admin, admin.cursor() as cursor:
        cursor.execute("SET GLOBAL local_infile = 0")
    try:
        yield
    finally:
        with pipeline.services.admin() as admin, admin.cursor() as cursor:
            cursor.execute("SET GLOBAL local_infile = 1")


def test_auto_probes_the_server(settings: ConsumerSettings) -> None:
    auto = settings.model_copy(update={"mysql_bulk_load": "auto"})
    assert WritePath(auto).resolve() == LOAD_DATA  # ops/mariadb.py starts MariaDB with it on


@pytest.mark.exclusive  # turns local_infile off on the server
@pytest.mark.usefixtures("local_infile_off")
def test_a_server_without_local_infile_means_insert_or_a_one_line_stop(
    settings: ConsumerSettings, pipeline: Pipeline, tmp_path: Path
) -> None:
    auto = settings.model_copy(update={"mysql_bulk_load": "auto"})
    assert WritePath(auto).resolve() == INSERT
    on = settings.model_copy(update={"mysql_bulk_load": "on"})
    with pytest.raises(BulkLoadUnavailable):
        WritePath(on).resolve()

    consumer = Service(pipeline, tmp_path, MYSQL_BULK_LOAD="on")
    consumer.start()
    try:
        code = consumer.wait(30)
    finally:
        consumer.stop_quietly()
    lines = [line for line in consumer.stderr_path.read_text().splitlines() if line.strip()]
    assert code == 2, consumer.stderr()
    assert len(lines) == 2, consumer.stderr()  # the structured line, then the plain one
    assert "MYSQL_BULK_LOAD=on" in fatal_line(consumer.stderr_path.read_text(), 2)
