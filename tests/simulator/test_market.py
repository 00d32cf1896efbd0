"""The market: broadcast faults (late ticks, sequence resets, strays) and per-connection drops."""

from __future__ import annotations

import ast
import itertools
import json
import time
from pathlib import Path

import pytest

from simulator import SimulatorConfig, SimulatorThread
from simulator.__main__ import build_parser, config_from_args
from simulator.tape import RESET_SEQUENCE, STRAY_SEQUENCE

from .helpers import collect, open_client, read_until_closed, recv_text, subscribe, tickers

pytestmark = pytest.mark.timeout(30)
ROOT = Path(__file__).resolve().parents[2]


def read_trades(config: SimulatorConfig) -> tuple[list[dict[str, object]], list[bytes]]:
    """The trade tickers one client read, and what the simulator says it generated."""
    assert config.count is not None
    with SimulatorThread(config) as sim, open_client(sim.url) as ws:
        subscribe(ws, ["BTC-USD"], ["ticker"])
        frames = [recv_text(ws) for _ in range(config.count)]
        assert sim.wait_until(lambda s: s.done(), timeout=5)
        sent = sim.sent_tickers()["BTC-USD"]
    assert [f.encode() for f in frames] == sent  # what was read is what was generated, in order
    return tickers(frames), sent


def sequences(messages: list[dict[str, object]]) -> list[int]:
    return [int(str(m["sequence"])) for m in messages]


def test_every_nth_tick_arrives_after_the_next_one() -> None:
    config = SimulatorConfig(
        products=("BTC-USD",), rate=0, count=20, snapshot=False, seed=3, out_of_order_every=5
    )
    messages, _ = read_trades(config)
    seqs = sequences(messages)
    late = [i for i, (a, b) in enumerate(itertools.pairwise(seqs)) if b < a]
    assert late == [4, 9, 14]  # ticks 5, 10 and 15 came after 6, 11 and 16; 20 is the last
    assert len(set(seqs)) == 20 and sorted(seqs) == sorted(set(seqs))
    trade_ids = [int(str(m["trade_id"])) for m in messages]
    assert sorted(trade_ids) != trade_ids and len(set(trade_ids)) == 20


def test_sequence_reset_jumps_back_and_climbs_again() -> None:
    config = SimulatorConfig(
        products=("BTC-USD",), rate=0, count=20, snapshot=False, seed=4, sequence_reset_after=10
    )
    messages, _ = read_trades(config)
    seqs = sequences(messages)
    assert seqs[:10] == sorted(seqs[:10]) and seqs[10:] == sorted(seqs[10:])
    assert RESET_SEQUENCE < seqs[10] <= RESET_SEQUENCE + 5 < seqs[9]
    trade_ids = [int(str(m["trade_id"])) for m in messages]
    assert trade_ids == sorted(set(trade_ids)), "distinct, real trades"


def test_one_stray_tick_with_a_huge_sequence() -> None:
    config = SimulatorConfig(
        products=("BTC-USD",), rate=0, count=20, snapshot=False, seed=5, stray_sequence_after=10
    )
    messages, _ = read_trades(config)
    seqs = sequences(messages)
    assert seqs[10] == STRAY_SEQUENCE
    rest = seqs[:10] + seqs[11:]
    assert rest == sorted(set(rest)) and rest[-1] < STRAY_SEQUENCE
    trade_ids = [int(str(m["trade_id"])) for m in messages]
    assert trade_ids == sorted(set(trade_ids))


def test_drop_one_every_drops_the_oldest_while_the_others_stay() -> None:
    config = SimulatorConfig(products=("BTC-USD",), rate=100, seed=6, drop_one_every=0.8)
    with SimulatorThread(config) as sim, open_client(sim.url) as one, open_client(sim.url) as two:
        subscribe(one, ["BTC-USD"], ["ticker"])
        subscribe(two, ["BTC-USD"], ["ticker"])
        first = read_until_closed(one, timeout=3)
        assert one.close_code == 1000
        assert two.close_code is None
        with open_client(sim.url) as three:
            subscribe(three, ["BTC-USD"], ["ticker"])
            second = read_until_closed(two, timeout=3)  # now the oldest
            assert two.close_code == 1000
            assert json.loads(recv_text(three))["type"] == "ticker" and three.close_code is None
    # While both were up they got the same ticks; the second carried on alone.
    trades_one = [f for f in first if '"trade_id"' in f]
    trades_two = [f for f in second if '"trade_id"' in f]
    both = trades_one[trades_one.index(trades_two[0]) :]
    assert len(both) >= 50 and trades_two[: len(both)] == both
    assert len(trades_two) > len(both) + 40


def test_a_lone_connection_is_dropped_too_and_misses_ticks_while_down() -> None:
    config = SimulatorConfig(products=("BTC-USD",), rate=200, seed=7, drop_one_every=0.5)
    received: list[str] = []
    with SimulatorThread(config) as sim:
        for _ in range(2):
            with open_client(sim.url) as ws:
                subscribe(ws, ["BTC-USD"], ["ticker"])
                received += read_until_closed(ws, timeout=3)
                assert ws.close_code == 1000
            time.sleep(0.2)  # down for a while: the market goes on
        generated = sim.sent_tickers()["BTC-USD"]
        delivered = sim.delivered_tickers()["BTC-USD"]
    assert delivered == [f.encode() for f in received]  # clean closes: all written arrived
    got = {f.encode() for f in received}
    assert got <= set(generated)
    missed = [f for f in generated if f not in got]
    assert len(missed) >= 20, "ticks generated while the only connection was down are missed"


def test_new_cli_flags_reach_the_config() -> None:
    args = build_parser().parse_args(
        ["--out-of-order-every", "7", "--sequence-reset-after", "100",
         "--stray-sequence-after", "50", "--drop-one-every", "2"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.out_of_order_every, config.sequence_reset_after) == (7, 100)
    assert (config.stray_sequence_after, config.drop_one_every) == (50, 2.0)
    for bad in ({"out_of_order_every": 1}, {"drop_one_every": 0.0}, {"stray_sequence_after": -1}):
        with pytest.raises(ValueError):
            SimulatorConfig(**bad)


def test_broadcast_ticks_reach_every_subscriber_of_their_product_only() -> None:
    config = SimulatorConfig(products=("BTC-USD", "ETH-BTC"), rate=100, seed=8, snapshot=False)
    with SimulatorThread(config) as sim, open_client(sim.url) as btc, open_client(sim.url) as both:
        subscribe(btc, ["BTC-USD"], ["ticker"])
        subscribe(both, ["BTC-USD", "ETH-BTC"], ["ticker"])
        only_btc, mixed = collect(btc, 0.5), collect(both, 0.5)
    assert {m["product_id"] for m in tickers(only_btc)} == {"BTC-USD"}
    assert {m["product_id"] for m in tickers(mixed)} == {"BTC-USD", "ETH-BTC"}


def test_simulator_modules_import_no_circle() -> None:
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "simulator").glob("*.py"):
        tree = ast.parse(path.read_text())
        graph[path.stem] = {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1
        }

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, set()) - seen:
            if nxt == target or reaches(nxt, target, seen | {nxt}):
                return True
        return False

    assert not [m for m in graph if m != "__init__" and reaches(m, m, set())]
