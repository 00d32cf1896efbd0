"""The trade tape end to end: the simulator's `matches` over a real WebSocket, the producer,
a real broker. The trades topic must hold every trade the simulator made, once, byte for
byte as sent; with the tape off nothing changes for the ticks and nothing reaches it."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Message

from ops.pipeline import PRODUCTS
from producer.feed import subscribe_message
from producer.publisher import Publisher
from producer.settings import ProducerSettings
from producer.tape import LATE, NEW, REPEATED, TradeLedger
from shared.failures import CannotStart
from shared.models import parse_feed_time
from shared.partitions import PartitionMap
from shared.settings import load
from simulator import SimulatorConfig, SimulatorThread, Trade
from tests.conftest import Pipeline
from tests.factories import (
    fatal_line,
    read_all,
    service_stderr,
    start_service,
    stop_service,
    ticker,
    wait_for,
)
from tests.producer.test_producer_e2e import published, sent
from tests.producer.test_stalled_client import first_one_wedged, settings_of, silent_broker


def test_the_ledger_publishes_each_trade_id_once_and_counts_holes() -> None:
    ledger = TradeLedger(remembered=4)
    verdicts = [ledger.check("BTC-USD", trade_id) for trade_id in (10, 11, 11, 14, 12, 15)]
    assert verdicts[:3] == [NEW, NEW, REPEATED]
    assert verdicts[3].publish and verdicts[3].missing == 2  # 12 and 13: a hole
    assert verdicts[4] == LATE  # 12 came after all: published, the hole is smaller
    assert verdicts[5] == NEW
    assert ledger.check("ETH-BTC", 11) == NEW  # products apart
    assert ledger.check("BTC-USD", 10) == LATE  # forgotten (memory of 4): the table's key
    assert len(ledger.recent["BTC-USD"]) == 4


def test_the_trades_topic_is_its_own_and_turns_the_matches_subscription_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_TOPIC", "coinbase.ticker")
    monkeypatch.setenv("KAFKA_TRADES_TOPIC", "coinbase.ticker")
    with pytest.raises(CannotStart, match=r"invalid setting KAFKA_TRADES_TOPIC: .*must differ"):
        load(ProducerSettings)
    monkeypatch.setenv("KAFKA_TRADES_TOPIC", "coinbase.matches")
    assert orjson.loads(subscribe_message(load(ProducerSettings)))["channels"] == [
        "ticker",
        "heartbeat",
        "matches",
    ]


@pytest.fixture
def taped(pipeline: Pipeline) -> Pipeline:
    """The test's pipeline with a private trades topic (dropped with it)."""
    return pipeline.with_trade_tape()


@contextmanager
def producer_on(pipeline: Pipeline, url: str, **env: str) -> Iterator[Any]:
    process = start_service("producer", pipeline, COINBASE_WS_URL=url, **env)
    try:
        yield process
    finally:
        if process.poll() is None:
            stop_service(process)


def tape(pipeline: Pipeline) -> dict[str, list[Message]]:
    """The trades topic per product, in offset order, checking key and partition."""
    found: dict[str, list[Message]] = {product: [] for product in PRODUCTS}
    for message in read_all(pipeline.services.bootstrap, pipeline.trades_topic, 3):
        product = (message.key() or b"").decode()
        assert message.partition() == PRODUCTS.index(product), product
        found[product].append(message)
    for messages in found.values():
        messages.sort(key=lambda message: message.offset() or 0)
    return found


def closing_line(stderr: str) -> dict[str, Any]:
    lines = [line for line in stderr.splitlines() if '"producer stopped"' in line]
    assert len(lines) == 1, stderr
    summary: dict[str, Any] = json.loads(lines[0])
    return summary


@pytest.mark.timeout(60)
def test_the_tape_is_every_trade_once_byte_identical_with_two_connections(
    taped: Pipeline,
) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=200, count=400, seed=21)
    with SimulatorThread(config) as simulator:
        with producer_on(taped, simulator.url, FEED_CONNECTIONS="2") as process:
            assert simulator.wait_until(lambda s: s.connections >= 2 and s.done(), timeout=30)
            time.sleep(0.5)
            code, err = stop_service(process)
        assert code == 0, err
        made: dict[str, list[Trade]] = simulator.trades()
        delivered = simulator.delivered_trade_ids()
        subscribes = simulator.subscribe_messages()
        url = simulator.url
    assert all("matches" in message["channels"] for message in subscribes)
    found = tape(taped)
    for product in PRODUCTS:
        trades = made[product]
        assert len(trades) > 400  # the one before the start, then 1..4 per ticker
        assert delivered[product] == [trade.trade_id for trade in trades]
        frames = [message.value() or b"" for message in found[product]]
        ids = [orjson.loads(frame)["trade_id"] for frame in frames]
        assert sorted(ids) == [trade.trade_id for trade in trades]  # each once, none missing
        by_id = {trade.trade_id: trade for trade in trades}
        for trade_id, frame in zip(ids, frames, strict=True):
            # Byte for byte as sent: a match, or the last_match a subscription began with.
            assert frame in (by_id[trade_id].frame(), by_id[trade_id].frame("last_match"))
        assert frames[0] == trades[0].frame("last_match")  # made before the start
        for message in found[product]:
            headers = dict(message.headers() or [])
            assert int(headers["received_ns"] or b"0") > 0 and headers["source"] == url.encode()
    summary = closing_line(err)["trades"]
    assert summary["topic"] == taped.trades_topic and summary["undelivered"] == 0
    assert summary["received"] == {p: len(made[p]) for p in PRODUCTS}
    assert summary["delivered"] == summary["received"]
    # The second connection's copies (and its last_match) skipped; it came 0.5 s later.
    assert all(summary["repeats_skipped"].get(product, 0) > 100 for product in PRODUCTS)
    assert summary["holes"] == {}


@pytest.mark.timeout(60)
def test_ticks_unchanged_with_the_tape_on(taped: Pipeline) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=300, count=300, seed=22)
    with SimulatorThread(config) as simulator:
        with producer_on(taped, simulator.url, FEED_CONNECTIONS="1") as process:
            assert simulator.wait_until(lambda s: s.done(), timeout=30)
            time.sleep(0.5)
            code, err = stop_service(process)
        assert code == 0, err
        expected = sent(simulator)
        made = simulator.trades()
    assert published(taped) == expected  # every ticker, once, byte for byte, as without
    found = tape(taped)
    for product in PRODUCTS:  # one connection: the tape in the order the feed sent it
        frames = [message.value() for message in found[product]]
        assert frames == [made[product][0].frame("last_match")] + [
            trade.frame() for trade in made[product][1:]
        ]


@pytest.mark.timeout(60)
def test_with_the_tape_off_no_matches_are_subscribed_or_published(taped: Pipeline) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=300, count=200, seed=23)
    with SimulatorThread(config) as simulator:
        with producer_on(
            taped, simulator.url, FEED_CONNECTIONS="1", KAFKA_TRADES_TOPIC=""
        ) as process:
            assert simulator.wait_until(lambda s: s.done(), timeout=30)
            time.sleep(0.5)
            code, err = stop_service(process)
        assert code == 0, err
        (subscribe,) = simulator.subscribe_messages()
        expected = sent(simulator)
    assert subscribe["channels"] == ["ticker", "heartbeat"]
    assert taped.end_offsets(taped.trades_topic) == [0, 0, 0]
    assert published(taped) == expected
    assert closing_line(err)["trades"] == "off"


def match(product: str, trade_id: object, kind: str = "match", **fields: object) -> bytes:
    values: dict[str, object] = {
        "type": kind,
        "trade_id": trade_id,
        "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
        "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1",
        "side": "buy",
        "size": "0.25000000",
        "price": "84140.83",
        "product_id": product,
        "sequence": 11235811214 + (trade_id if isinstance(trade_id, int) else 0),
        "time": "2026-09-29T13:46:00.028459Z",
    }
    values |= fields
    return orjson.dumps({key: value for key, value in values.items() if value is not None})


@pytest.mark.timeout(60)
def test_malformed_matches_go_to_the_dead_letters_and_the_rest_to_the_tape(
    taped: Pipeline, tmp_path: Path
) -> None:
    good = [
        match("BTC-USD", 100, "last_match"),
        match("BTC-USD", 101),
        match("ETH-BTC", 7),
        match("BTC-USD", 104),  # 102 and 103 missing: a hole
    ]
    bad = {
        match("BTC-USD", None, product_id=None): "match without product_id",
        match("BTC-USD", "105"): "match trade_id is not a non-negative integer",
        match("BTC-EUR", -1, "last_match"): "last_match trade_id is not a non-negative integer",
    }
    repeated = match("BTC-USD", 101)  # the same trade again: skipped, not dead-lettered
    lines = [good[0], ticker("BTC-USD", 5), good[1], *bad, repeated, good[2], good[3]]
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join(lines) + b"\n")
    config = SimulatorConfig(products=PRODUCTS, rate=50, replay_file=capture)
    with (
        SimulatorThread(config) as simulator,
        producer_on(taped, simulator.url, FEED_CONNECTIONS="1") as process,
    ):
        assert simulator.wait_until(lambda s: s.done(), timeout=20)
        time.sleep(0.5)
        code, err = stop_service(process)
    assert code == 0, err
    dead = read_all(taped.services.bootstrap, taped.dlq_topic, 3)
    assert {m.value(): dict(m.headers() or [])["reason"] for m in dead} == {
        frame: reason.encode() for frame, reason in bad.items()
    }
    found = tape(taped)
    assert [m.value() for m in found["BTC-USD"]] == [good[0], good[1], good[3]]
    assert [m.value() for m in found["ETH-BTC"]] == [good[2]]
    assert found["BTC-EUR"] == []
    assert [m.value() for m in read_all(taped.services.bootstrap, taped.topic, 3)] == [
        ticker("BTC-USD", 5)
    ]
    summary = closing_line(err)["trades"]
    assert summary["repeats_skipped"] == {"BTC-USD": 1}
    assert summary["holes"] == {"BTC-USD": 1} and summary["missing_trade_ids"] == {"BTC-USD": 2}
    assert "trade ids missing on the matches stream" in err


@pytest.mark.timeout(60)
def test_a_deleted_trades_topic_stops_the_producer_naming_it(taped: Pipeline) -> None:
    config = SimulatorConfig(products=PRODUCTS, rate=100, seed=24)
    with SimulatorThread(config) as simulator:
        process = start_service(
            "producer", taped, COINBASE_WS_URL=simulator.url, FLUSH_TIMEOUT_S="1"
        )
        assert simulator.wait_until(lambda s: sum(s.trade_counts().values()) > 200, 20)
        admin = taped.services.admin_client()
        admin.delete_topics([taped.trades_topic])[taped.trades_topic].result()
        deleted_at = time.monotonic()
        process.wait(timeout=30)
        stopped_after = time.monotonic() - deleted_at
    assert process.returncode == 1, service_stderr(process)
    assert stopped_after < 20
    line = fatal_line(service_stderr(process), 1)
    assert taped.trades_topic in line and "gone" in line and "(trades client)" in line, line
    assert "trades not delivered to Kafka" in line


def publish_trades(publisher: Publisher, first_id: int, count: int) -> list[bytes]:
    frames = []
    for trade_id in range(first_id, first_id + count):
        product = PRODUCTS[trade_id % len(PRODUCTS)]
        frame = match(product, trade_id)
        assert publisher.publish_trade(frame, product, PRODUCTS.index(product), time.time_ns())
        frames.append(frame)
    return frames


@pytest.mark.timeout(60)
def test_a_client_wedged_while_only_trades_wait_is_replaced_and_they_arrive_once(
    taped: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trades' own watch finds the stall (no tick waits), and the replacement moves
    everything the client held: each trade reaches the trades topic once, ticks theirs."""
    addresses: list[str] = []
    with silent_broker() as silent:
        publisher = Publisher(
            settings_of(taped, monkeypatch),
            PartitionMap(PRODUCTS),
            "test",
            make_producer=first_one_wedged(silent, addresses),
            stall_s=1,
        )
        held = publish_trades(publisher, 1, 30)
        wait_for(lambda: publisher.replacements == 1, 20, "the stalled producer replaced")
        assert publisher.trades is not None and publisher.trades.watch.replacements == 1
        after = publish_trades(publisher, 31, 10)
        ticks = [ticker("BTC-USD", sequence) for sequence in (1, 2, 3)]
        for frame in ticks:
            assert publisher.publish(frame, "BTC-USD", 1, time.time_ns())
        assert publisher.close(20) == 0
    assert len(addresses) == 2
    found = [m.value() for messages in tape(taped).values() for m in messages]
    assert Counter(found) == Counter(held + after)
    assert [m.value() for m in read_all(taped.services.bootstrap, taped.topic, 3)] == ticks


@pytest.mark.timeout(60)
def test_trades_kafka_never_took_are_counted_apart_from_ticks(
    taped: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    with silent_broker() as silent:
        settings = settings_of(taped, monkeypatch, KAFKA_BOOTSTRAP_SERVERS=silent)
        publisher = Publisher(settings, PartitionMap(PRODUCTS), "test")
        publish_trades(publisher, 1, 4)
        assert publisher.publish(ticker("ETH-BTC", 1), "ETH-BTC", 0, time.time_ns())
        assert publisher.close(0) == 5
    assert publisher.trades is not None and publisher.trades.undelivered == 4
    assert publisher.ticks.undelivered == 1


@pytest.mark.timeout(60)
def test_through_the_consumer_the_table_holds_every_trade_exactly(taped: Pipeline) -> None:
    """Simulator -> producer (two connections) -> Kafka -> consumer -> `trade`: one row per
    trade the simulator made, every field as it sent it."""
    config = SimulatorConfig(products=PRODUCTS, rate=200, count=200, seed=25)
    consumer = start_service("consumer", taped)
    try:
        with SimulatorThread(config) as simulator:
            with producer_on(taped, simulator.url, FEED_CONNECTIONS="2") as process:
                assert simulator.wait_until(lambda s: s.connections >= 2 and s.done(), 30)
                time.sleep(0.5)
                code, err = stop_service(process)
            assert code == 0, err
            made = [trade for trades in simulator.trades().values() for trade in trades]
        query = "SELECT COUNT(*) FROM `trade`"
        wait_for(lambda: taped.rows(query)[0][0] >= len(made), 20, "every trade stored")
    finally:
        code, err = stop_service(consumer)
    assert code == 0, err
    columns = "product_id, trade_id, side, price, size, time, sequence, maker_order_id"
    columns += ", taker_order_id, source"
    stored = taped.rows(f"SELECT {columns} FROM `trade` ORDER BY product_id, trade_id")
    assert stored == [row(t) for t in sorted(made, key=lambda t: (t.product_id, t.trade_id))]


def row(trade: Trade) -> tuple[object, ...]:
    """The `trade` row a feed trade must become."""
    time_utc = parse_feed_time(trade.time).replace(tzinfo=None)
    return (
        *(trade.product_id, trade.trade_id, trade.side, Decimal(trade.price)),
        *(Decimal(trade.size), time_utc, trade.sequence, trade.maker_order_id),
        *(trade.taker_order_id, "ws"),
    )
