"""Helpers for the consumer's failure drills: frames with known rows, a service subprocess
whose logs go to files (a pipe could fill up and stall it), and an exact-table check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from drills.core import CHECKED_COLUMNS, expected_row
from tests.conftest import ROOT, Pipeline, python_env
from tests.factories import committed, produce, row_count, ticker, wait_for

Key = tuple[str, int]
Record = tuple[int, bytes]


def sequence_of(partition: int, n: int) -> int:
    return 10**11 + partition * 10**9 + n * 3


@dataclass
class Feed:
    """Frames produced so far, and the row each must become (offsets included)."""

    pipeline: Pipeline
    next_n: list[int] = field(default_factory=list)
    expected: dict[Key, tuple[object, ...]] = field(default_factory=dict)
    offsets: list[int] = field(default_factory=list)  # next offset (= end) per partition

    def __post_init__(self) -> None:
        self.next_n = [0] * len(self.pipeline.products)
        self.offsets = [0] * len(self.pipeline.products)

    def records(self, per_product: int, products: Sequence[int] | None = None) -> list[Record]:
        """The next `per_product` trade tickers of each product (interleaved), not yet sent."""
        partitions = range(len(self.pipeline.products)) if products is None else products
        out: list[Record] = []
        for _ in range(per_product):
            for partition in partitions:
                n = self.next_n[partition]
                self.next_n[partition] += 1
                out.append(
                    (
                        partition,
                        ticker(self.pipeline.products[partition], sequence_of(partition, n)),
                    )
                )
        return out

    def send(self, records: Iterable[Record]) -> list[Key]:
        """Produce `records` (a fresh topic only gets records through here) and expect them."""
        records = list(records)
        produce(self.pipeline, records)
        keys = []
        for partition, value in records:
            frame = orjson.loads(value)
            key = (frame["product_id"], frame["sequence"])
            self.expected[key] = expected_row(frame, partition, self.offsets[partition])
            self.offsets[partition] += 1
            keys.append(key)
        return keys

    def send_no_rows(self, records: Iterable[Record]) -> None:
        """Produce records that must not become rows (snapshots, bad frames)."""
        records = list(records)
        produce(self.pipeline, records)
        for partition, _value in records:
            self.offsets[partition] += 1

    def produce(self, per_product: int, products: Sequence[int] | None = None) -> list[Key]:
        return self.send(self.records(per_product, products))

    @property
    def total(self) -> int:
        return len(self.expected)


def table_problems(pipeline: Pipeline, expected: dict[Key, tuple[object, ...]]) -> list[str]:
    """Differences between `order` and `expected`: missing, extra, duplicate or wrong rows."""
    rows = pipeline.rows(f"SELECT {', '.join(CHECKED_COLUMNS)} FROM `order`")
    problems: list[str] = []
    seen: dict[Key, tuple[object, ...]] = {}
    for row in rows:
        key = (str(row[0]), int(row[1]))
        if key in seen:
            problems.append(f"duplicate row {key}")
        seen[key] = tuple(row)
    missing = expected.keys() - seen.keys()
    extra = seen.keys() - expected.keys()
    if missing:
        problems.append(f"{len(missing)} rows missing, e.g. {sorted(missing)[:3]}")
    if extra:
        problems.append(f"{len(extra)} unexpected rows, e.g. {sorted(extra)[:3]}")
    wrong = [key for key in expected.keys() & seen.keys() if seen[key] != expected[key]]
    for key in sorted(wrong)[:3]:
        diff = [
            f"{name}: {got!r} != {want!r}"
            for name, got, want in zip(CHECKED_COLUMNS, seen[key], expected[key], strict=True)
            if got != want
        ]
        problems.append(f"row {key} differs: {'; '.join(diff)}")
    if len(wrong) > 3:
        problems.append(f"... {len(wrong)} rows differ in all")
    if len(rows) != len(expected):
        problems.append(f"{len(rows)} rows, expected {len(expected)}")
    return problems


class Service:
    """`python -m <module> ...` against one pipeline; stdout and stderr go to files."""

    def __init__(
        self,
        pipeline: Pipeline,
        logs: Path,
        name: str = "consumer",
        module: str = "consumer",
        args: Sequence[str] = (),
        **env: str,
    ) -> None:
        self.pipeline, self.logs, self.name, self.module = pipeline, logs, name, module
        self.args, self.env = tuple(args), env
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def stderr_path(self) -> Path:
        return self.logs / f"{self.name}-{self.runs}.stderr"

    @property
    def stdout_path(self) -> Path:
        return self.logs / f"{self.name}-{self.runs}.stdout"

    def start(self) -> subprocess.Popen[bytes]:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.runs += 1
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                cwd=ROOT,
                env=python_env(self.pipeline.env(**self.env)),
                stdout=out,
                stderr=err,
            )
        return self.process

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running after {timeout_s} s\n{self.stderr()}"
            ) from None

    def terminate(self, timeout_s: float = 30) -> tuple[int, float]:
        """SIGTERM and wait: (exit code, seconds it took)."""
        assert self.process is not None
        started = time.monotonic()
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        code = self.wait(timeout_s)
        return code, time.monotonic() - started

    def stderr(self, lines: int = 60) -> str:
        """The last `lines` of this run's stderr, for assertion messages."""
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        tail = text.splitlines()[-lines:]
        return f"--- {self.name} run {self.runs} stderr (last {len(tail)} lines) ---\n" + "\n".join(
            tail
        )

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def all_stderr(self) -> str:
        return "".join(
            (self.logs / f"{self.name}-{run}.stderr").read_text(errors="replace")
            for run in range(1, self.runs + 1)
        )

    def stop_quietly(self) -> None:
        """Teardown: whatever happened, leave no process of ours running."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def running(service: Service) -> Iterator[Service]:
    service.start()
    try:
        yield service
    finally:
        service.stop_quietly()


def wait_until_exact(feed: Feed, service: Service, timeout_s: float) -> None:
    """All rows in and every partition's offset committed up to its end; the service alive."""

    def done() -> bool:
        assert service.alive(), f"the consumer exited early\n{service.stderr()}"
        return row_count(feed.pipeline) >= feed.total and committed(feed.pipeline) == feed.offsets

    try:
        wait_for(done, timeout_s, f"{feed.total} rows and offsets {feed.offsets}")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; rows {row_count(feed.pipeline)}, committed "
            f"{committed(feed.pipeline)}\n{service.stderr()}"
        ) from None


def assert_exact(
    feed: Feed, context: str = "", expected: dict[Key, tuple[object, ...]] | None = None
) -> None:
    """`order` holds exactly `expected` (default: every row the feed produced)."""
    problems = table_problems(feed.pipeline, feed.expected if expected is None else expected)
    assert not problems, (
        "table not exact" + (f" ({context})" if context else "") + ":\n" + "\n".join(problems)
    )


def subset(feed: Feed, keys: Iterable[Key]) -> dict[Key, tuple[object, ...]]:
    return {key: feed.expected[key] for key in keys}


def json_lines(text: str) -> list[dict[str, object]]:
    """The structured log lines in `text` (tracebacks and librdkafka lines skipped)."""
    found = []
    for line in text.splitlines():
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(item, dict):
            found.append(item)
    return found
