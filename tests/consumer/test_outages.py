"""The consumer alone against the real broker and MariaDB, in what the whole-pipeline drills
(drills/core.py, run by tests/consumer/test_drills.py: kill -9, MariaDB restart, broker down)
don't do: SIGTERM in the middle of a backlog, and a start while MariaDB is down. After each,
the table is exact and the offsets are at the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Pipeline
from tests.consumer.harness import Feed, Service, assert_exact, wait_until_exact
from tests.factories import committed, row_count, wait_for

BACKLOG_PER_PRODUCT = 20_000  # 60k frames


@pytest.fixture
def consumer(pipeline: Pipeline, tmp_path: Path) -> Iterator[Service]:
    service = Service(pipeline, tmp_path)
    yield service
    service.stop_quietly()


@pytest.mark.timeout(90)
def test_sigterm_during_a_backlog_exits_0_promptly(pipeline: Pipeline, consumer: Service) -> None:
    feed = Feed(pipeline)
    feed.produce(BACKLOG_PER_PRODUCT)
    consumer.start()
    wait_for(lambda: row_count(pipeline) > 0, 30, "the first rows")
    code, took = consumer.terminate(timeout_s=30)
    assert code == 0, consumer.stderr()
    assert took < 10, f"shutdown took {took:.1f} s\n{consumer.stderr()}"

    # A clean stop commits what it wrote: per partition, rows == committed offset.
    offsets = committed(pipeline)
    per_partition: dict[object, object] = {
        partition: count
        for partition, count in pipeline.rows(
            "SELECT kafka_partition, COUNT(*) FROM `order` GROUP BY kafka_partition"
        )
    }
    assert [per_partition.get(p, 0) for p in range(3)] == [max(o, 0) for o in offsets], (
        f"rows per partition {per_partition} vs committed {offsets}\n{consumer.stderr()}"
    )
    assert row_count(pipeline) < feed.total, "SIGTERM came after the backlog was done"

    consumer.start()
    wait_until_exact(feed, consumer, 60)
    code, _took = consumer.terminate()
    assert code == 0, consumer.stderr()
    assert_exact(feed)


@pytest.mark.exclusive  # stops the database
@pytest.mark.timeout(90)
def test_started_while_mariadb_is_down_waits_and_sigterm_still_exits_0(
    pipeline: Pipeline, consumer: Service
) -> None:
    feed = Feed(pipeline)
    feed.produce(1000)
    pipeline.services.control("stop", "mariadb")
    try:
        consumer.start()
        time.sleep(4)
        assert consumer.alive(), f"consumer gave up on a database that is down\n{consumer.stderr()}"
        code, took = consumer.terminate(timeout_s=30)
        assert code == 0, consumer.stderr()
        assert took < 10, f"shutdown took {took:.1f} s while retrying\n{consumer.stderr()}"
    finally:
        pipeline.services.control("start", "mariadb")
    assert all(offset < 0 for offset in committed(pipeline)), "committed without writing"
    assert row_count(pipeline) == 0

    consumer.start()
    wait_until_exact(feed, consumer, 60)
    code, _took = consumer.terminate()
    assert code == 0, consumer.stderr()
    assert_exact(feed)
