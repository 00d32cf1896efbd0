"""Frames far larger than a ticker: over a real WebSocket from the simulator, to the real broker.

A valid ticker with a 2 MiB extra field must cost neither a tick nor the connection: it is
published (lz4 shrinks most such fields far below Kafka's limit) or, when Kafka still
refuses it, dead-lettered truncated with its reason and original length.
"""

from __future__ import annotations

import base64
import json
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Message
from confluent_kafka.admin import NewTopic
from prometheus_client import REGISTRY

from ops.pipeline import PRODUCTS, create_topic
from producer.publisher import Publisher
from producer.settings import ProducerSettings
from shared.dead_letters import DEAD_LETTER_KEEP_BYTES
from shared.failures import CannotStart
from shared.partitions import PartitionMap
from shared.settings import load
from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import Pipeline, Services
from tests.factories import read_all, start_service, stop_service, ticker
from tests.producer.test_producer_e2e import published

BIG = 2 * 1024 * 1024


def compressible_field() -> str:
    """2 MiB of text such as a feed could add (repetitive: lz4 makes it a few KiB)."""
    return ("0123456789abcdef" * (BIG // 16 + 1))[:BIG]


def incompressible_field(size: int = BIG) -> str:
    """`size` bytes of base64 noise: lz4 can't shrink it below Kafka's 1 MiB default."""
    noise = random.Random(19).randbytes(size * 3 // 4 + 3)
    return base64.b64encode(noise).decode()[:size]


def capture(path: Path, per_product: int, big: dict[int, str]) -> list[bytes]:
    """A replay file of tickers round-robin over PRODUCTS, with `big[n]` (a memo field) added
    to the n-th line; sequences step by 10 per line."""
    lines: list[bytes] = []
    for index in range(per_product):
        for offset, product in enumerate(PRODUCTS):
            number = index * len(PRODUCTS) + offset
            sequence, memo = 1000 + 10 * number, big.get(number)
            lines.append(ticker(product, sequence, memo=memo))  # memo None: no such field
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def large_frames(event: str) -> float:
    found = REGISTRY.get_sample_value("producer_large_frames_total", {"event": event})
    return found or 0.0


def header(message: Message, name: str) -> bytes | None:
    value = dict(message.headers() or []).get(name)
    return value if value is None or isinstance(value, bytes) else str(value).encode()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("feed_connections", [1, 2])
def test_a_2_mib_ticker_between_ticks_costs_no_tick_and_not_the_connection(
    pipeline: Pipeline, tmp_path: Path, feed_connections: int
) -> None:
    # Two 2 MiB valid tickers mid-stream: one lz4 makes small (published), one it can't
    # (Kafka's 1 MiB default refuses it: dead-lettered, truncated). On one connection nothing
    # else can cover for a lost session; with two, a big frame that comes twice goes once.
    lines = capture(
        tmp_path / "feed.jsonl", 200, {151: compressible_field(), 402: incompressible_field()}
    )
    fits, refused = lines[151], lines[402]
    assert (b'"BTC-USD"' in fits, b'"ETH-BTC"' in refused) == (True, True)
    config = SimulatorConfig(products=PRODUCTS, replay_file=tmp_path / "feed.jsonl", rate=300)
    with SimulatorThread(config) as simulator:
        process = start_service(
            "producer",
            pipeline,
            COINBASE_WS_URL=simulator.url,
            FEED_CONNECTIONS=str(feed_connections),
        )
        assert simulator.wait_until(lambda s: s.done(), timeout=30)
        time.sleep(1.0)
        code, err = stop_service(process)
        connections = simulator.connections
        broadcast = simulator.sent_tickers()  # all the feed sent, to whoever was connected
    assert code == 0, err[-2000:]

    found = published(pipeline)
    expected: dict[str, list[bytes]] = {product: [] for product in PRODUCTS} | {
        product: [line for line in frames if line != refused]
        for product, frames in broadcast.items()
        if product in PRODUCTS
    }
    for values in expected.values():
        values.sort(key=lambda value: json.loads(value)["sequence"])
    lost = {p: len(set(expected[p]) - set(found[p])) for p in PRODUCTS}
    sent = sum(len(frames) for frames in expected.values())
    assert connections == feed_connections, f"a connection was lost ({connections}); {lost}"
    assert sent == len(lines) - 1, "the simulator did not send every line"
    # The big frames are in sequence: no anomaly names them (a second connection's subscribe
    # can race the first one's stream on a loaded machine, which is not what this checks).
    big = {json.loads(fits)["sequence"], json.loads(refused)["sequence"]}
    anomalies = [json.loads(line) for line in err.splitlines() if '"sequence anomaly' in line]
    assert not [a for a in anomalies if a.get("sequence") in big], anomalies
    assert lost == dict.fromkeys(PRODUCTS, 0), f"valid ticks lost: {lost} of {sent}"
    assert found == expected
    assert fits in found["BTC-USD"]

    (dead,) = read_all(pipeline.services.bootstrap, pipeline.dlq_topic, 3)
    assert dead.value() == refused[:DEAD_LETTER_KEEP_BYTES]
    assert header(dead, "original_length") == str(len(refused)).encode()
    assert b"too large" in (header(dead, "reason") or b"").lower()
    assert dead.key() == b"ETH-BTC"

    # One line per kind, not one per frame (two large frames arrived in one interval or two).
    large_lines = [line for line in err.splitlines() if "large frame" in line]
    refused_lines = [line for line in err.splitlines() if "dead-lettered, truncated" in line]
    assert 1 <= len(large_lines) <= 2 and len(refused_lines) == 1, err[-3000:]


@pytest.fixture
def small_topics(services: Services) -> Iterator[tuple[str, str]]:
    """A raw topic whose max.message.bytes is 50,000 (one partition per product), and a
    dead-letter topic with the broker's defaults."""
    suffix = uuid.uuid4().hex[:10]
    raw, dlq = f"test.small.{suffix}", f"test.small.dlq.{suffix}"
    admin = services.admin_client()
    topic = NewTopic(raw, len(PRODUCTS), 1, config={"max.message.bytes": "50000"})
    admin.create_topics([topic])[raw].result(timeout=30)
    create_topic(services, dlq, 1)
    yield raw, dlq
    for deleted in admin.delete_topics([raw, dlq]).values():
        deleted.result(timeout=30)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["broker", "client"])
def test_a_frame_kafka_refuses_is_dead_lettered_truncated_and_its_batch_still_delivered(
    services: Services, small_topics: tuple[str, str], where: str
) -> None:
    raw, dlq = small_topics
    # "broker": the topic's 50,000-byte limit refuses the compressed batch (in the delivery
    # report); "client": a 64 KiB feed limit sets librdkafka's message.max.bytes below the
    # frame, so produce() refuses it at once.
    settings = ProducerSettings(
        products=PRODUCTS,
        kafka_bootstrap_servers=services.bootstrap,
        kafka_topic=raw,
        kafka_dlq_topic=dlq,
        feed_max_frame_bytes=65536 if where == "client" else 16 * 2**20,
        producer_linger_ms=200,  # the big frame shares its batch with the ticks around it
    )
    before_counts = {event: large_frames(event) for event in ("resent", "dead_lettered")}
    publisher = Publisher(settings, PartitionMap(PRODUCTS), source="test")
    partition = PRODUCTS.index("BTC-USD")
    before = [ticker("BTC-USD", sequence) for sequence in range(1, 51)]
    after = [ticker("BTC-USD", sequence) for sequence in range(52, 101)]
    big = ticker("BTC-USD", 51, memo=incompressible_field(300_000))
    for frame in [*before, big, *after]:
        publisher.publish(frame, "BTC-USD", partition, time.time_ns())
    assert publisher.close(30) == 0  # no tick left undelivered: the big one is a dead letter

    values = [m.value() for m in read_all(services.bootstrap, raw, len(PRODUCTS))]
    assert sorted(values, key=lambda v: json.loads(v or b"{}")["sequence"]) == before + after
    (dead,) = read_all(services.bootstrap, dlq, 1)
    assert dead.value() == big[:DEAD_LETTER_KEEP_BYTES]
    assert header(dead, "original_length") == str(len(big)).encode()
    assert b"too large" in (header(dead, "reason") or b"").lower()
    assert header(dead, "source_partition") == str(partition).encode()
    assert large_frames("dead_lettered") == before_counts["dead_lettered"] + 1
    # The broker refuses the whole batch: the ticks batched with the big frame go again.
    resent = large_frames("resent") - before_counts["resent"]
    assert resent > 0 if where == "broker" else resent == 0


@pytest.mark.parametrize("value", ["65535", str(256 * 2**20 + 1), "16MiB"])
def test_feed_max_frame_bytes_is_validated(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FEED_MAX_FRAME_BYTES", value)
    with pytest.raises(CannotStart, match=r"^invalid setting FEED_MAX_FRAME_BYTES"):
        load(ProducerSettings)
