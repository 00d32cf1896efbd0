"""`python -m simulator` and the asyncio API."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from shared.failures import EXIT_CODES_HELP
from simulator import Simulator, SimulatorConfig

from .helpers import open_client, recv_text, rest_get, subscribe

pytestmark = pytest.mark.timeout(30)
ROOT = Path(__file__).resolve().parents[2]


def test_cli_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "simulator", "--port", "0", "--products", "ETH-BTC,BTC-USD",
               "--rate", "50", "--seed", "1", "--drop-code", "1001"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            match = re.search(r"listening on (ws://127\.0\.0\.1:\d+) \(REST (http://\S+)\)", line)
            assert match, line
            with open_client(match.group(1)) as ws:
                assert subscribe(ws, ["BTC-USD"], ["ticker"])["type"] == "subscriptions"
                assert json.loads(recv_text(ws))["product_id"] == "BTC-USD"
            status, headers, body = rest_get(f"{match.group(2)}/products/ETH-BTC/trades")
            assert status == 200 and len(json.loads(body)) >= 1 and "CB-AFTER" in headers
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            proc.kill()


def test_cli_help_names_the_faults_and_exit_codes() -> None:
    command = [sys.executable, "-m", "simulator", "--help"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0
    for flag in ("--out-of-order-every", "--sequence-reset-after", "--stray-sequence-after",
                 "--drop-one-every", "--trade-history", "--rest-rate", "--rest-burst",
                 "--rest-fault-share", "--rest-faults", "--autostart", "/products/{id}/trades",
                 EXIT_CODES_HELP):  # fmt: skip
        assert flag in result.stdout


def test_cli_port_taken_is_one_line_and_exit_2() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "simulator", "--port", str(port)]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"port {port} is taken (set --port): Address already in use"
    ]


def test_cli_rejects_bad_options() -> None:
    command = [sys.executable, "-m", "simulator", "--drop-code", "sometimes"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert "drop-code" in result.stderr


def test_asyncio_api() -> None:
    async def scenario() -> list[str]:
        config = SimulatorConfig(products=("SOL-USD",), rate=0, count=3, seed=1)
        async with Simulator(config) as sim:
            assert sim.url == f"ws://127.0.0.1:{sim.port}"
            async with connect(sim.url) as ws:
                await ws.send(json.dumps({"type": "subscribe", "product_ids": ["SOL-USD"],
                                          "channels": ["ticker"]}))  # fmt: skip
                frames = [str(await ws.recv()) for _ in range(5)]
            assert sim.done()
            return frames

    frames = asyncio.run(scenario())
    assert json.loads(frames[0])["type"] == "subscriptions"
    assert [json.loads(f)["product_id"] for f in frames[1:]] == ["SOL-USD"] * 4


def test_serve_forever_stops_when_cancelled() -> None:
    async def scenario() -> None:
        sim = Simulator(SimulatorConfig(products=("SOL-USD",)))
        await sim.start()
        task = asyncio.create_task(sim.serve_forever())
        async with connect(sim.url):
            pass
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
