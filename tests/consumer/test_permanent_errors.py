"""Permanent errors stop the consumer loudly: at start-up with one clear line, and mid-run a
writer that dies brings the whole process down without committing what it could not write."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ops.http import http_get
from tests.conftest import APP_USER, Pipeline
from tests.consumer.harness import (
    Feed,
    Service,
    assert_exact,
    json_lines,
    wait_until_exact,
)
from tests.factories import committed, fatal_line, free_port, row_count


def stderr_lines(service: Service) -> list[str]:
    return [line for line in service.stderr_path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(60)
def test_table_missing_a_column_stops_at_start_with_one_line(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    with pipeline.services.admin(pipeline.database) as admin, admin.cursor() as cursor:
        cursor.execute("ALTER TABLE `order` DROP COLUMN volume_30d")
    Feed(pipeline).produce(10)
    consumer = Service(pipeline, tmp_path)
    started = time.monotonic()
    consumer.start()
    try:
        code = consumer.wait(30)
    finally:
        consumer.stop_quietly()
    took = time.monotonic() - started
    assert code == 2, consumer.stderr()
    assert took < 20, f"took {took:.1f} s to give up\n{consumer.stderr()}"
    assert len(stderr_lines(consumer)) == 2, consumer.stderr()  # structured, then plain
    line = fatal_line(consumer.stderr_path.read_text(), 2)
    assert "volume_30d" in line and "`order`" in line, line
    assert row_count(pipeline) == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("name", "value"),
    [("MYSQL_PORT", "notaport"), ("BATCH_MAX_ROWS", "0"), ("PRODUCTS", "btc")],
)
def test_bad_setting_exits_with_one_line_naming_it(
    pipeline: Pipeline, tmp_path: Path, name: str, value: str
) -> None:
    consumer = Service(pipeline, tmp_path, **{name: value})
    consumer.start()
    try:
        code = consumer.wait(20)
    finally:
        consumer.stop_quietly()
    lines = stderr_lines(consumer)
    assert code == 2, consumer.stderr()
    assert len(lines) == 1, consumer.stderr()
    assert lines[0].startswith(f"invalid setting {name}"), lines[0]


FAULTS = {
    # The writer loses its INSERT privilege: error 1142, a permanent one.
    "revoke insert": (
        "REVOKE INSERT ON `{db}`.`order` FROM '" + APP_USER + "'@'%'",
        "GRANT INSERT ON `{db}`.`order` TO '" + APP_USER + "'@'%'",
        "1142",
    ),
    # Someone changes the schema under the running consumer: error 1054.
    "column dropped": ("ALTER TABLE `{db}`.`order` DROP COLUMN volume_30d", None, "1054"),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_writer_that_dies_brings_the_process_down(
    pipeline: Pipeline, tmp_path: Path, fault: str
) -> None:
    inject, repair, code_in_error = FAULTS[fault]
    feed = Feed(pipeline)
    feed.produce(500)
    consumer = Service(pipeline, tmp_path)
    try:
        consumer.start()
        wait_until_exact(feed, consumer, 30)
        before = committed(pipeline)
        with pipeline.services.admin() as admin, admin.cursor() as cursor:
            cursor.execute(inject.format(db=pipeline.database))

        feed.produce(100, products=[1])  # only BTC-USD's writer meets the fault
        started = time.monotonic()
        code = consumer.wait(30)
        took = time.monotonic() - started
    finally:
        consumer.stop_quietly()

    log = consumer.stderr_path.read_text()
    assert code == 1, consumer.stderr()
    assert took < 25, f"took {took:.1f} s to go down\n{consumer.stderr()}"
    died = [line for line in json_lines(log) if line.get("event") == "writer failed"]
    assert len(died) == 1, consumer.stderr()
    assert died[0]["product"] == "BTC-USD", died[0]
    line = fatal_line(log, 1)  # one plain line, no traceback
    assert line.startswith("writer BTC-USD: MySQL refused the write as " + APP_USER), line
    assert code_in_error in line, line
    assert any(entry.get("event") == "consumer stopped" for entry in json_lines(log))
    stopped = {line["product"] for line in json_lines(log) if line.get("event") == "writer stopped"}
    assert stopped == {"ETH-BTC", "BTC-EUR"}, f"the healthy writers should stop cleanly\n{log}"
    assert committed(pipeline) == before, "offsets committed past rows that were not written"
    assert row_count(pipeline) == 1500

    if repair is None:
        return
    with pipeline.services.admin() as admin, admin.cursor() as cursor:
        cursor.execute(repair.format(db=pipeline.database))
    try:
        consumer.start()
        wait_until_exact(feed, consumer, 30)
        exit_code, _took = consumer.terminate()
        assert exit_code == 0, consumer.stderr()
    finally:
        consumer.stop_quietly()
    assert_exact(feed, "after the privilege came back")


@pytest.mark.timeout(90)
def test_a_deleted_topic_turns_the_consumer_unhealthy_then_stops_it_with_one_line(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    feed = Feed(pipeline)
    feed.produce(200)
    port = free_port()
    consumer = Service(pipeline, tmp_path, CONSUMER_METRICS_PORT=str(port))
    health = f"http://127.0.0.1:{port}/healthz"
    try:
        consumer.start()
        wait_until_exact(feed, consumer, 30)
        admin = pipeline.services.admin_client()
        admin.delete_topics([pipeline.topic])[pipeline.topic].result()
        deleted_at = time.monotonic()
        statuses = []
        while consumer.alive() and time.monotonic() - deleted_at < 40:
            statuses.append(http_get(health)[0])
            time.sleep(0.1)
        took = time.monotonic() - deleted_at
        code = consumer.wait(10)
    finally:
        consumer.stop_quietly()
    log = consumer.stderr_path.read_text()
    assert code == 1, consumer.stderr()
    assert took < 20, f"took {took:.1f} s to stop\n{consumer.stderr()}"
    assert 503 in statuses, statuses  # unhealthy before it exits
    line = fatal_line(log, 1)
    assert pipeline.topic in line and "gone" in line, line
    assert log.count("offset commit failed") <= 3, consumer.stderr()
    assert row_count(pipeline) == 600
