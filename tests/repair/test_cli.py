"""Exit codes of python -m repair (0 done, 2 a bad setting, 1 REST gone for good) and the
one-shot wait for the table to show the holes closed."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from ops.pipeline import Pipeline, create_topic, free_port
from simulator import SimulatorThread
from tests.factories import fatal_line

from .harness import market, published, run_repair, store, store_except, summary

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ((), {"REPAIR_REST_RATE": "20"}, "REPAIR_REST_RATE"),
        ((), {"COINBASE_REST_URL": "ftp://example.com"}, "COINBASE_REST_URL"),
        ((), {"KAFKA_TRADES_TOPIC": ""}, "KAFKA_TRADES_TOPIC"),
        ((), {"KAFKA_TRADES_TOPIC": "no.such.topic"}, "no.such.topic"),
        (("--product", "DOGE-USD"), {}, "DOGE-USD"),
    ],
)
def test_a_bad_setting_exits_2(
    tape: Pipeline, args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    env = {"COINBASE_REST_URL": "http://127.0.0.1:1"} | env
    result = run_repair(tape, env.pop("COINBASE_REST_URL"), *args, **env)
    assert result.returncode == 2, result.stderr
    assert named in fatal_line(result.stderr, 2)


def test_bad_since_is_a_usage_error(tape: Pipeline) -> None:
    result = run_repair(tape, "http://127.0.0.1:1", "--since", "yesterday")
    assert result.returncode == 2 and "not an ISO-8601 time" in result.stderr


def test_rest_gone_for_good_exits_1(tape: Pipeline) -> None:
    with market(count=50) as sim:
        store_except(tape, sim, {"BTC-USD": [(5, 9)]})
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens
    started = time.monotonic()
    result = run_repair(tape, url, REPAIR_REST_GIVE_UP_S="1")
    assert result.returncode == 1
    assert "Coinbase REST failed for 1 s" in fatal_line(result.stderr, 1)
    assert time.monotonic() - started < 15


def _consumer(tape: Pipeline, sim: SimulatorThread, stop: threading.Event) -> None:
    """Stands in for the consumer: stores what repair publishes (source rest)."""
    made = {(t.product_id, t.trade_id): t for trades in sim.trades().values() for t in trades}
    stored = 0
    while not stop.is_set():
        messages = published(tape)
        fresh = messages[stored:]
        if fresh:
            store(
                tape,
                [
                    made[((m.key() or b"").decode(), orjson.loads(m.value() or b"")["trade_id"])]
                    for m in fresh
                ],
                source="rest",
            )
            stored = len(messages)
        stop.wait(0.3)


def test_one_shot_waits_for_the_table(tape: Pipeline) -> None:
    with market(count=300) as sim:
        store_except(tape, sim, {"BTC-USD": [(5, 9), (100, 199)], "BTC-EUR": [(7, 7)]})
        stop = threading.Event()
        writer = threading.Thread(target=_consumer, args=(tape, sim, stop), daemon=True)
        writer.start()
        try:
            result = summary(run_repair(tape, sim.rest_url, REPAIR_WAIT_S="20"))
        finally:
            stop.set()
            writer.join(10)
    assert result["verified_in_table"] is True and result["trades_fetched"] == 106
    query = "SELECT COUNT(*) FROM `trade` WHERE source = 'rest'"
    assert tape.rows(query)[0][0] == 106


def test_one_shot_without_a_consumer_says_so(tape: Pipeline) -> None:
    with market(count=50) as sim:
        store_except(tape, sim, {"BTC-USD": [(5, 9)]})
        result = run_repair(tape, sim.rest_url, REPAIR_WAIT_S="1")
    assert result.returncode == 1
    line = fatal_line(result.stderr, 1)
    assert "published 5 trades" in line and "is the consumer running?" in line


def test_a_trades_topic_short_of_partitions_exits_2(tape: Pipeline) -> None:
    narrow = tape.trades_topic + ".narrow"
    create_topic(tape.services, narrow, 1)
    try:
        result = run_repair(tape, "http://127.0.0.1:1", KAFKA_TRADES_TOPIC=narrow)
    finally:
        tape.services.admin_client().delete_topics([narrow])
    assert result.returncode == 2
    assert "fewer partitions than PRODUCTS" in fatal_line(result.stderr, 2)
