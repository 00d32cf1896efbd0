"""Faults: server drops, stalls, malformed frames and errors, as clients must survive them."""

from __future__ import annotations

import itertools
import json

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from simulator import MALFORMED_KINDS, SimulatorConfig, SimulatorThread
from simulator.config import DropCode

from .helpers import THREE, collect, collect_timed, open_client, read_until_closed, subscribe

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("code", [1000, 1001, 1011])
def test_drop_after_messages_closes_cleanly_and_reconnect_continues(code: DropCode) -> None:
    config = SimulatorConfig(products=THREE, rate=0, seed=4, drop_after_messages=10, drop_code=code)
    with SimulatorThread(config) as sim:
        received: list[str] = []
        for _ in range(2):
            with open_client(sim.url) as ws:
                subscribe(ws, THREE, ["ticker"])
                frames = read_until_closed(ws)
                assert len(frames) == 10
                assert ws.close_code == code
                received += frames
        assert sim.connections == 2
        sent = sim.sent_tickers()
    # Every frame received was generated once; what was queued for a connection
    # when it closed is simply missed (the market broadcasts, it does not wait).
    generated = [f for fs in sent.values() for f in fs]
    assert len(generated) == len(set(generated))
    assert {f.encode() for f in received} <= set(generated)
    for product in THREE:
        sequences = [json.loads(f)["sequence"] for f in received if product in f]
        assert sequences == sorted(set(sequences)), "a reconnect continues, never repeats"


def test_drop_abort_is_an_abnormal_closure() -> None:
    config = SimulatorConfig(
        products=("BTC-USD",), rate=50, drop_after_messages=5, drop_code="abort"
    )
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD"], ["ticker"])
        with pytest.raises(ConnectionClosedError) as closed:
            read_until_closed(ws)
            ws.recv(timeout=5)
        assert closed.value.rcvd is None  # no close frame
        assert ws.close_code == 1006


def test_drop_after_seconds() -> None:
    config = SimulatorConfig(products=("BTC-USD",), rate=20, drop_after_seconds=0.6, drop_code=1001)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD"], ["ticker", "heartbeat"])
        timed = collect_timed(ws, 5)
        assert 0.5 < timed[-1][0] < 1.2
        assert ws.close_code == 1001
        assert 8 <= len(timed) <= 16


def test_stall_stops_everything_but_keeps_the_socket() -> None:
    config = SimulatorConfig(
        products=("BTC-USD",), rate=50, heartbeat_interval=0.1,
        stall_after_messages=6, stall_seconds=1.0,
    )  # fmt: skip
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD"], ["ticker", "heartbeat"])
        timed = collect_timed(ws, 1.8)
        assert ws.close_code is None
    gaps = [(b[0] - a[0], a, b) for a, b in itertools.pairwise(timed)]
    longest, before, after = max(gaps)
    assert 0.9 < longest < 1.5
    data_before = [f for t, f in timed if t <= before[0] and '"heartbeat"' not in f]
    assert len(data_before) == 6  # snapshot + 5 trade tickers, then silence
    assert any('"heartbeat"' in f for t, f in timed if t >= after[0]), "heartbeats resume"


def test_malformed_every_cycles_through_kinds() -> None:
    config = SimulatorConfig(products=("BTC-USD",), rate=0, count=6, malformed_every=2, seed=9)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD"], ["ticker"])
        frames = collect(ws, 0.5)
        malformed = sim.sent_malformed()
        sent = sim.sent_tickers()["BTC-USD"]
    assert len(malformed) >= len(MALFORMED_KINDS)
    assert [f.encode() for f in frames[1::2]] == malformed  # every 2nd frame
    assert [f.encode() for f in frames[0::2]] == sent  # the rest are real tickers
    not_json, truncated, no_product, unknown, array, empty = malformed[:6]
    for garbage in (not_json, truncated):
        with pytest.raises(ValueError):
            json.loads(garbage)
    assert "product_id" not in json.loads(no_product)
    assert json.loads(unknown)["product_id"] == "DOGE-XYZ"
    assert isinstance(json.loads(array), list)
    assert empty == b""


def test_error_after_messages_then_close_1011() -> None:
    config = SimulatorConfig(products=("ETH-BTC",), rate=0, error_after_messages=5)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["ETH-BTC"], ["ticker"])
        frames = read_until_closed(ws)
        assert ws.close_code == 1011
    assert len(frames) == 6
    error = json.loads(frames[-1])
    assert error["type"] == "error" and error["message"] and error["reason"]
    assert all(json.loads(f)["type"] == "ticker" for f in frames[:-1])


def test_stop_closes_clients_with_1001() -> None:
    sim = SimulatorThread(SimulatorConfig(products=("ETH-BTC",), rate=5)).start()
    try:
        with open_client(sim.url) as ws:
            subscribe(ws, ["ETH-BTC"], ["ticker"])
            sim.stop()
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=5)
            assert ws.close_code == 1001
    finally:
        sim.stop()
