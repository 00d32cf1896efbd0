"""`make demo` (ops/run.sh) watches its components: one dies, the demo stops naming it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops.http import http_get
from tests.conftest import ROOT, Pipeline, python_env
from tests.factories import free_port, wait_for

READER = "ticker_reader"


@dataclass
class Demo:
    process: subprocess.Popen[str]
    analysis_port: int
    output: Path  # the demo's stdout and stderr

    def text(self) -> str:
        return self.output.read_text()


@pytest.fixture
def demo_env(pipeline: Pipeline, tmp_path: Path) -> dict[str, str]:
    """The demo on private ports, topics and database (the reader may SELECT its `order`)."""
    with pipeline.services.admin() as connection, connection.cursor() as cursor:
        cursor.execute(f"GRANT SELECT ON `{pipeline.database}`.`order` TO '{READER}'@'%'")
    return python_env(
        pipeline.env(
            SIMULATOR_PORT=str(free_port()),
            ANALYSIS_PORT=str(free_port()),
            PRODUCER_METRICS_PORT=str(free_port()),
            CONSUMER_METRICS_PORT=str(free_port()),
            DEMO_SECONDS="120",
            DEMO_LOGS=str(tmp_path / "logs"),
        )
    )


@contextmanager
def running_demo(demo_env: dict[str, str], tmp_path: Path) -> Iterator[Demo]:
    """`ops/run.sh demo` with `demo_env`; stopped (SIGTERM) at the end if still running."""
    output = tmp_path / "demo.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            ["ops/run.sh", "demo"],
            cwd=ROOT,
            env=demo_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    demo = Demo(process, int(demo_env["ANALYSIS_PORT"]), output)
    try:
        yield demo
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


def descendants(pid: int) -> dict[int, str]:
    """Every process under `pid`, with its command line (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            found[child] = (
                (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        except OSError:
            continue
        todo += children.get(child, [])
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_component_stops_the_demo_naming_it(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    with running_demo(demo_env, tmp_path) as demo:
        stops_when_the_simulator_is_killed(demo)


def stops_when_the_simulator_is_killed(run_demo: Demo) -> None:
    url = f"http://127.0.0.1:{run_demo.analysis_port}/healthz"
    wait_for(
        lambda: run_demo.process.poll() is None and http_get(url)[0] == 200,
        60,
        "the demo's analysis service",
    )
    components = descendants(run_demo.process.pid)
    simulator = [pid for pid, command in components.items() if "-m simulator" in command]
    others = [
        pid
        for pid, command in components.items()
        if "-m producer" in command or "-m consumer" in command or "-m analysis" in command
    ]
    assert len(simulator) == 1 and len(others) == 3, components
    killed = time.monotonic()
    os.kill(simulator[0], signal.SIGKILL)
    code = run_demo.process.wait(timeout=60)
    took = time.monotonic() - killed
    assert code == 128 + signal.SIGKILL  # the component's own code: non-zero
    assert "demo: simulator exited with code 137" in run_demo.text()
    assert took < 20, f"the demo took {took:.1f} s to stop"
    assert not [pid for pid in others if alive(pid)], "components left running"


def test_a_taken_port_stops_the_demo_with_the_components_line(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    port = int(demo_env["ANALYSIS_PORT"])
    with socket.create_server(("0.0.0.0", port)), running_demo(demo_env, tmp_path) as run_demo:
        code = run_demo.process.wait(timeout=90)
    assert code == 2  # the analysis service's own code: cannot start
    named = [line for line in run_demo.text().splitlines() if line.startswith("demo: analysis")]
    assert named == [
        f"demo: analysis exited with code 2: port {port} is taken "
        "(set ANALYSIS_PORT): Address already in use"
    ]
    after = run_demo.text().split(named[0], 1)[1]
    assert "rows" not in after  # no row counts printed after it died ("no rows yet" may be before)
