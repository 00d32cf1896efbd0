"""Outage drills against the real broker and MariaDB: kill -9, database restart, broker down,
SIGTERM mid-backlog. After each, the table is exact and the offsets are at the end."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Pipeline
from tests.consumer.harness import Feed, Service, SteadyProducer, assert_exact, wait_until_exact
from tests.factories import committed, row_count, wait_for

BACKLOG_PER_PRODUCT = 20_000  # 60k frames


@pytest.fixture
def consumer(pipeline: Pipeline, tmp_path: Path) -> Iterator[Service]:
    service = Service(pipeline, tmp_path)
    yield service
    service.stop_quietly()


@pytest.mark.timeout(120)
def test_kill_9_at_random_moments_during_a_backlog(pipeline: Pipeline, tmp_path: Path) -> None:
    seed = int(os.environ.get("DRILL_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    feed = Feed(pipeline)
    feed.produce(BACKLOG_PER_PRODUCT)
    # Smaller batches: more commit points to die between, and a backlog that lasts a while.
    consumer = Service(pipeline, tmp_path, BATCH_MAX_ROWS="500")
    kills = rng.randint(3, 5)
    last_kill_by = feed.total * 4 // 5  # leave some backlog after the last kill
    moments: list[tuple[int, int]] = []  # (rows when killed, rows after the kill)
    try:
        for kill in range(kills):
            # Each run writes a random share of what is left before it dies.
            written = row_count(pipeline)
            threshold = written + rng.randint(1, max(1, (last_kill_by - written) // (kills - kill)))
            consumer.start()

            def reached(target: int = threshold) -> bool:
                return row_count(pipeline) >= target or not consumer.alive()

            wait_for(reached, 60, f"{threshold} rows")
            time.sleep(rng.uniform(0, 0.03))  # land anywhere in a batch: poll, insert, commit
            assert consumer.alive(), (
                f"consumer exited on its own (seed {seed})\n{consumer.stderr()}"
            )
            before = row_count(pipeline)
            consumer.kill9()
            moments.append((before, row_count(pipeline)))
        assert all(after < feed.total for _before, after in moments), (
            f"a kill came after the backlog was done: {moments} (seed {seed})"
        )

        consumer.start()
        wait_until_exact(feed, consumer, 60)
        code, _took = consumer.terminate()
        assert code == 0, consumer.stderr()
    finally:
        consumer.stop_quietly()
    assert_exact(feed, f"seed {seed}, kills at rows {moments}")
    assert committed(pipeline) == [BACKLOG_PER_PRODUCT] * 3


@pytest.mark.timeout(90)
def test_mariadb_restart_mid_stream(pipeline: Pipeline, consumer: Service) -> None:
    feed = Feed(pipeline)
    feed.produce(1000)
    consumer.start()
    wait_until_exact(feed, consumer, 30)

    steady = SteadyProducer(feed)
    steady.start()
    try:
        wait_for(
            lambda: feed.total > 4000 and row_count(pipeline) > 3500,
            30,
            "the live stream to flow",
        )
        pipeline.services.control("stop", "mariadb")
        try:
            produced_at_stop = steady.produced()
            time.sleep(4)
            assert steady.produced() > produced_at_stop, "frames kept flowing into Kafka"
            assert consumer.alive(), f"consumer exited while MariaDB was down\n{consumer.stderr()}"
        finally:
            pipeline.services.control("start", "mariadb")
        time.sleep(1)  # some more frames after the restart
    finally:
        steady.finish()
    wait_until_exact(feed, consumer, 60)
    code, _took = consumer.terminate()
    assert code == 0, consumer.stderr()
    assert_exact(feed)
    log = consumer.all_stderr()
    assert "transient failure, retrying" in log and '"operation": "mysql"' in log, (
        "the writers should have retried the database\n" + consumer.stderr()
    )


@pytest.mark.timeout(120)
def test_kafka_broker_down_for_a_while(pipeline: Pipeline, consumer: Service) -> None:
    feed = Feed(pipeline)
    feed.produce(1000)
    consumer.start()
    wait_until_exact(feed, consumer, 30)
    feed.produce(10_000)  # a backlog in flight when the broker goes
    wait_for(lambda: row_count(pipeline) > 3000, 30, "the backlog to start")
    try:
        pipeline.services.control("stop", "kafka")
        time.sleep(4)
        assert consumer.alive(), f"consumer exited while Kafka was down\n{consumer.stderr()}"
    finally:
        pipeline.services.control("start", "kafka")  # waits until the broker answers
    feed.produce(1000)
    wait_until_exact(feed, consumer, 60)
    code, _took = consumer.terminate()
    assert code == 0, consumer.stderr()
    assert_exact(feed)


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
