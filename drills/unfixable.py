"""Drills of faults that retrying cannot fix: the service must say so within seconds, in one
line, with the exit code from the table, and lose nothing quietly.

- revoked_grant: the writer account loses INSERT mid-stream. The consumer exits 1 naming
  the error and the account; the grant comes back, the consumer restarts, and the table
  must then hold every tick exactly once (run_drill's usual comparison).
- topic_deleted: the raw topic is deleted while ticks flow. Both services exit 1 within
  seconds; the producer's closing summary must account for every tick it read: each one
  acknowledged by Kafka before the deletion, or counted as not delivered.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from drills.core import (
    Outcome,
    Run,
    _config,
    log_file,
    log_path,
    run_drill,
    stop,
    wait_until,
)
from ops.pipeline import APP_USER, Pipeline
from simulator import SimulatorThread

FAIL_FAST_S = 20.0  # what "within seconds" means here, generously for a loaded machine


def revoke_insert(run: Run) -> None:
    """REVOKE INSERT 2 s (scaled) into the stream; the consumer must exit 1 within
    FAIL_FAST_S; then GRANT it back and start the consumer again."""
    wait_until(lambda: run.pipeline.row_count() > 0)
    time.sleep(2 * run.size)
    table = f"`{run.pipeline.database}`.`order`"
    with run.pipeline.services.admin() as admin, admin.cursor() as cursor:
        cursor.execute(f"REVOKE INSERT ON {table} FROM '{APP_USER}'@'%'")
    revoked_at = time.monotonic()
    run.rows_at_fault = run.pipeline.row_count()
    try:
        code: int | None = run.consumer.wait(FAIL_FAST_S)
    except subprocess.TimeoutExpired:  # still running: not failing fast
        code = None
    run.fault_note = f"consumer exit {code} after {time.monotonic() - revoked_at:.1f} s"
    run.crashes += code != 1  # anything else than a prompt exit 1 counts against the drill
    if code is None:
        stop(run.consumer)
    with run.pipeline.services.admin() as admin, admin.cursor() as cursor:
        cursor.execute(f"GRANT INSERT ON {table} TO '{APP_USER}'@'%'")
    run.consumer = run.start("consumer")


def revoked_grant(pipeline: Pipeline, size: float) -> Outcome:
    return run_drill(
        pipeline,
        "INSERT revoked, then granted back",
        _config(pipeline, 100, 1500 * size, 7),
        revoke_insert,
        size,
    )


@dataclass
class TopicDeleted:
    """What the services did when the raw topic was deleted under them."""

    producer_exit: int | None
    producer_s: float  # deletion -> exit
    consumer_exit: int | None
    consumer_s: float
    ticks_read: int  # first arrivals of ticks the producer read
    delivered: int  # acknowledged by Kafka (gone with the topic, many already rows)
    undelivered: int  # counted as not delivered in the producer's closing line
    dropped: int  # counted as dropped with the buffer full
    error_lines: int  # log lines about ticks Kafka did not take

    @property
    def unaccounted(self) -> int:
        return self.ticks_read - self.delivered - self.undelivered - self.dropped

    @property
    def problems(self) -> int:
        slow = self.producer_s > FAIL_FAST_S or self.consumer_s > FAIL_FAST_S
        return (
            int(self.producer_exit != 1)
            + int(self.consumer_exit != 1)
            + int(slow)
            + abs(self.unaccounted)
        )


def topic_deleted(pipeline: Pipeline, size: float) -> TopicDeleted:
    config = _config(pipeline, 100, 100_000, 8)  # more than the drill lasts
    with log_file(pipeline) as logs, SimulatorThread(config) as simulator:
        quiet = {"COINBASE_WS_URL": simulator.url, "FLUSH_TIMEOUT_S": "2"}
        consumer, producer = (
            pipeline.start(module, env=quiet, logs=logs) for module in ("consumer", "producer")
        )
        try:
            wait_until(lambda: pipeline.row_count() > 0)
            time.sleep(3 * size)
            admin = pipeline.services.admin_client()
            admin.delete_topics([pipeline.topic])[pipeline.topic].result()
            deleted_at = time.monotonic()
            exits: dict[str, tuple[int | None, float]] = {}
            while len(exits) < 2 and time.monotonic() - deleted_at < 2 * FAIL_FAST_S:
                for name, process in (("producer", producer), ("consumer", consumer)):
                    if name not in exits and process.poll() is not None:
                        exits[name] = (process.returncode, time.monotonic() - deleted_at)
                time.sleep(0.05)
        finally:
            stop(producer)
            stop(consumer)
    never = (None, 2 * FAIL_FAST_S)
    lines = structured_lines(log_path(pipeline))
    summary: dict[str, Any] = next(
        line for line in reversed(lines) if line.get("event") == "producer stopped"
    )
    return TopicDeleted(
        producer_exit=exits.get("producer", never)[0],
        producer_s=round(exits.get("producer", never)[1], 1),
        consumer_exit=exits.get("consumer", never)[0],
        consumer_s=round(exits.get("consumer", never)[1], 1),
        ticks_read=sum(summary["received"].values()),
        delivered=sum(summary["delivered"].values()),
        undelivered=int(summary["undelivered"]),
        dropped=sum(summary["dropped_buffer_full"].values()),
        error_lines=sum(line.get("event") == "Kafka did not take ticks" for line in lines),
    )


def structured_lines(path: Path) -> list[dict[str, Any]]:
    """The structured lines of a drill's log (librdkafka's own lines skipped)."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.startswith(b"{")]
