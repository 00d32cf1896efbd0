"""Realistic ticker frames and helpers to put them into and read them out of real services."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import IO

import orjson
from confluent_kafka import Consumer, Message, TopicPartition

from ops.pipeline import ROOT, Pipeline, python_env
from ops.pipeline import free_port as free_port  # tests import it from here
from simulator.frames import ticker_text

BASE_TIME = datetime(2026, 9, 29, 13, 45, 58, 116787, tzinfo=UTC)


def ticker(product: str, sequence: int, trade_id: int | None = None, **fields: object) -> bytes:
    """A trade ticker frame, laid out by the simulator's generator, with values derived
    from `sequence`; `fields` override or add keys (None removes one)."""
    stamp = BASE_TIME + timedelta(milliseconds=sequence % 100_000)
    frame = ticker_text(
        sequence=sequence,
        product_id=product,
        price=f"{84000 + sequence % 1000}.{sequence % 100:02d}",
        open_24h="83629.9",
        volume_24h="5667.41926850",
        low_24h="82510.37",
        high_24h="84557.01",
        volume_30d="180889.67159800",
        best_bid="84138.41",
        best_bid_size="0.02880000",
        best_ask="84146.91",
        best_ask_size="0.00949200",
        side="buy",
        time=stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        trade_id=trade_id if trade_id is not None else sequence * 2,
        last_size="0.00004104",
    ).encode()
    if not fields:
        return frame
    values = orjson.loads(frame) | fields
    return orjson.dumps({key: value for key, value in values.items() if value is not None})


def patched(frame: bytes, **fields: object) -> bytes:
    """`frame` with some fields replaced (to make bad frames); big ints kept exact."""
    values = orjson.loads(frame) | fields
    body = ",".join(
        f'"{key}":{value}' if isinstance(value, int) else f'"{key}":{orjson.dumps(value).decode()}'
        for key, value in values.items()
    )
    return ("{" + body + "}").encode()


def snapshot(product: str, sequence: int | None = None) -> bytes:
    frame: dict[str, object] = {
        "type": "ticker",
        "product_id": product,
        "price": "0",
        "open_24h": "0",
        "volume_24h": "0",
        "low_24h": "0",
        "high_24h": "0",
        "volume_30d": "0",
        "best_bid": "0.00000",
        "best_ask": "0.00000",
    }
    if sequence is not None:
        frame["sequence"] = sequence
    return orjson.dumps(frame)


def produce(pipeline: Pipeline, records: Iterable[tuple[int, bytes]]) -> int:
    """Publish (partition, value) records with the producer's headers; returns how many."""
    records = list(records)
    with pipeline.producing() as send:
        for partition, value in records:
            send(partition, time.time_ns(), value)
    return len(records)


def read_all(bootstrap: str, topic: str, partitions: int, timeout_s: float = 10) -> list[Message]:
    """Every record currently in `topic`, read from the start of each partition."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False}
    )
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in range(partitions)
    }
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions) if ends[p] > 0])
    found: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while sum(ends.values()) > len(found) and time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.5):
            if message.error() is None:
                found.append(message)
    consumer.close()
    return found


def committed(pipeline: Pipeline, group_id: str | None = None) -> list[int]:
    consumer = Consumer(
        {
            "bootstrap.servers": pipeline.services.bootstrap,
            "group.id": group_id or pipeline.group_id,
        }
    )
    offsets = consumer.committed(
        [TopicPartition(pipeline.topic, p) for p in range(len(pipeline.products))], timeout=10
    )
    consumer.close()
    return [tp.offset for tp in offsets]


# A service's stderr goes to a file, not a pipe: a full pipe would stall the service.
_STDERR: weakref.WeakKeyDictionary[subprocess.Popen[bytes], IO[bytes]] = weakref.WeakKeyDictionary()


def start_service(
    module: str, pipeline: Pipeline, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process object)
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=python_env(pipeline.env(**env)),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    _STDERR[process] = stderr
    return process


def kill_leftovers() -> None:
    """Kill service processes a failed test left running (see conftest's autouse fixture)."""
    for process in list(_STDERR):
        if process.poll() is None:
            process.kill()
            process.wait(10)


def stop_service(process: subprocess.Popen[bytes], timeout_s: float = 30) -> tuple[int, str]:
    """SIGTERM, wait, and return (exit code, stderr)."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=timeout_s)
    return process.returncode, service_stderr(process)


def service_stderr(process: subprocess.Popen[bytes]) -> str:
    stderr = _STDERR[process]
    stderr.seek(0)
    return stderr.read().decode(errors="replace")


def fatal_line(stderr: str, exit_code: int) -> str:
    """The plain line a fatal failure ends stderr with, checked against the structured line
    before it (event "fatal", the same exit code) and for the absence of a traceback."""
    assert "Traceback" not in stderr, stderr
    *logged, plain = stderr.strip().splitlines()
    assert not plain.startswith("{"), stderr
    if logged and logged[-1].startswith("{"):  # logging was set up: the structured twin
        record = orjson.loads(logged[-1])
        assert record["event"] == "fatal" and record["exit_code"] == exit_code, record
        assert record["error"] == plain
    return plain


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def row_count(pipeline: Pipeline) -> int:
    return pipeline.row_count()


def as_decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
