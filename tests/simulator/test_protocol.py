"""Subscribe handshake of the simulated Exchange feed, over real sockets."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from simulator import SimulatorConfig, SimulatorThread

from .helpers import THREE, open_client, read_until_closed, recv_text, subscribe

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    # One quiet simulator for the handshake tests: few frames, no faults.
    with SimulatorThread(SimulatorConfig(products=(*THREE, "SOL-USD"), rate=5, seed=1)) as running:
        yield running


def test_no_subscribe_within_deadline_closes_with_1008() -> None:
    config = SimulatorConfig(subscribe_timeout=0.3)
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert 0.25 < time.monotonic() - started < 3
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert "subscribe" in closed.value.rcvd.reason


def test_messages_before_subscribe_are_ignored(sim: SimulatorThread) -> None:
    with open_client(sim.url) as ws:
        ws.send(json.dumps({"type": "hello"}))
        answer = subscribe(ws, ["BTC-USD"], ["ticker"])
        assert answer["type"] == "subscriptions"


def test_subscriptions_answer_lists_channels_and_products(sim: SimulatorThread) -> None:
    with open_client(sim.url) as ws:
        answer = subscribe(
            ws, THREE, ["ticker", {"name": "heartbeat", "product_ids": ["ETH-BTC", "SOL-USD"]}]
        )
    assert answer["type"] == "subscriptions"
    channels = {c["name"]: set(c["product_ids"]) for c in answer["channels"]}
    assert channels == {"ticker": set(THREE), "heartbeat": {"ETH-BTC", "SOL-USD"}}


@pytest.mark.parametrize(
    ("products", "channels", "reason"),
    [
        (["BTC-USD", "XRP-JPY"], ["ticker"], "XRP-JPY is not a valid product"),
        (["BTC-USD"], ["ticker", "level2"], "require authentication"),
        (["BTC-USD"], ["trades"], "trades is not a valid channel"),
    ],
)
def test_bad_subscribe_gets_error_then_close(
    sim: SimulatorThread, products: list[str], channels: list[str], reason: str
) -> None:
    with open_client(sim.url) as ws:
        answer = subscribe(ws, products, channels)
        assert answer["type"] == "error"
        assert answer["message"] == "Failed to subscribe"
        assert reason in answer["reason"]
        assert read_until_closed(ws) == []
        assert ws.close_code == 1008


def test_auth_fields_recorded_and_numeric_timestamp_rejected(sim: SimulatorThread) -> None:
    auth = {"signature": "c2ln", "key": "k", "passphrase": "p", "timestamp": "1790000000"}
    with open_client(sim.url) as ws:
        assert subscribe(ws, ["BTC-USD"], ["ticker"], **auth)["type"] == "subscriptions"
    with open_client(sim.url) as ws:
        answer = subscribe(ws, ["BTC-USD"], ["ticker"], **{**auth, "timestamp": 1790000000})
        assert answer["type"] == "error"
        assert "timestamp" in answer["reason"]
    recorded = sim.subscribe_messages()
    assert {**auth, "type": "subscribe"}.items() <= recorded[-2].items()
    assert recorded[-1]["timestamp"] == 1790000000


def test_malformed_client_json_is_an_error(sim: SimulatorThread) -> None:
    with open_client(sim.url) as ws:
        ws.send("{not json")
        assert json.loads(recv_text(ws))["type"] == "error"
        read_until_closed(ws)


def test_unsubscribe_is_acknowledged_and_stops_the_product(sim: SimulatorThread) -> None:
    with open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD", "SOL-USD"], ["ticker"])
        ws.send(
            json.dumps({"type": "unsubscribe", "product_ids": ["SOL-USD"], "channels": ["ticker"]})
        )
        ws.send(json.dumps({"type": "something-new"}))  # ignored
        deadline = time.monotonic() + 5
        while True:
            message = json.loads(recv_text(ws, timeout=max(0.01, deadline - time.monotonic())))
            if message["type"] == "subscriptions":
                break
        assert message["channels"] == [{"name": "ticker", "product_ids": ["BTC-USD"]}]
        later = [json.loads(recv_text(ws)) for _ in range(3)]
        assert {m["product_id"] for m in later} == {"BTC-USD"}


def test_connections_are_counted(sim: SimulatorThread) -> None:
    before = sim.connections
    with open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD"], ["ticker"])
    assert sim.wait_until(lambda s: s.connections == before + 1, timeout=5)
