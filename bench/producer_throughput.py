"""Producer benchmark: simulator -> producer -> Kafka, beside two bounds from the same run.

    .venv/bin/python -m bench.producer_throughput --count 100000 [--json out.json]

On the same seeded, unpaced simulator stream: the transport bound (a bare websockets
client reads and discards), the Kafka bound (confluent-kafka produces the same bytes from
a list, with the producer's settings), and `python -m producer` from first frame to last
in Kafka, with CPU per 100k messages and peak memory; then frame received -> delivery
report p50/p99 at 100 msg/s per product from the producer's histogram (bucket bounds).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from websockets.asyncio.client import connect

from bench.report import (
    Process,
    histogram_quantiles,
    metrics_text,
    print_table,
    start_simulator,
    write_json,
)
from ops.pipeline import PRODUCTS, Pipeline, free_port, throwaway_pipeline


async def read_stream(url: str, expected: int) -> tuple[float, list[bytes]]:
    """The transport bound: read `expected` ticker frames, keep them, do nothing else."""
    frames: list[bytes] = []
    started = 0.0
    async with connect(url, max_size=2**20) as websocket:
        subscribe = {"type": "subscribe", "product_ids": PRODUCTS, "channels": ["ticker"]}
        await websocket.send(orjson.dumps(subscribe))
        while len(frames) < expected:
            frame = await websocket.recv(decode=False)
            if b'"type":"ticker"' in frame[:20]:
                started = started or time.perf_counter()
                frames.append(frame)
    return time.perf_counter() - started, frames


def kafka_bound(pipeline: Pipeline, frames: list[bytes]) -> float:
    """The same frames produced from a list, with the producer's settings, into a topic the
    producer run does not use (the pipeline's dead-letter topic)."""
    config = {"enable.idempotence": True, "acks": "all", "linger.ms": 5,
              "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000}  # fmt: skip
    producer = Producer({"bootstrap.servers": pipeline.services.bootstrap, **config})
    started = time.perf_counter()
    for number, frame in enumerate(frames):
        part = number % len(PRODUCTS)
        stamp = str(time.time_ns())
        producer.produce(pipeline.dlq_topic, frame, PRODUCTS[part], part,
                         headers={"received_ns": stamp, "source": "bench"})  # fmt: skip
        if number % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return time.perf_counter() - started


def first_timestamp_s(pipeline: Pipeline, reader: Consumer) -> float:
    """CreateTime of the earliest record in the topic (set at produce())."""
    stamps = []
    for partition in range(len(PRODUCTS)):
        reader.assign([TopicPartition(pipeline.topic, partition, 0)])
        message = reader.poll(10)
        if message is not None and message.error() is None:
            stamps.append(message.timestamp()[1] / 1000)
    return min(stamps, default=0.0)


def run_producer(pipeline: Pipeline, count: int) -> dict[str, float]:
    """The producer through the whole stream: rate, CPU per 100k, peak RSS."""
    simulator, url = start_simulator(rate=0, count=count)
    expected = len(PRODUCTS) * (count + 1)  # + one snapshot per product
    reader = Consumer({"bootstrap.servers": pipeline.services.bootstrap, "group.id": "bench"})
    env = {"COINBASE_WS_URL": url, "LOG_LEVEL": "WARNING", "FEED_CONNECTIONS": "1",
           "PRODUCER_BUFFER_MESSAGES": "1000000"}  # fmt: skip
    process = pipeline.start("producer", env=env)
    watched = Process(process.pid)
    partitions = [TopicPartition(pipeline.topic, p) for p in range(len(PRODUCTS))]
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if sum(reader.get_watermark_offsets(tp, 10)[1] for tp in partitions) >= expected:
                break
            time.sleep(0.05)
        finished, cpu, rss = time.time(), watched.cpu_seconds(), watched.peak_rss_mb()
        started = first_timestamp_s(pipeline, reader)
    finally:
        for running in (process, simulator):
            running.terminate()
            running.wait(30)
        reader.close()
    seconds = finished - started
    return {"messages": expected, "seconds": seconds, "messages_per_s": expected / seconds,
            "cpu_s_per_100k": cpu / expected * 100_000, "peak_rss_mb": rss}  # fmt: skip


def delivery_latency(pipeline: Pipeline, seconds: float) -> dict[str, float]:
    simulator, url = start_simulator(rate=100, count=None)
    port = free_port()
    env = {"COINBASE_WS_URL": url, "LOG_LEVEL": "WARNING", "PRODUCER_METRICS_PORT": str(port)}
    process = pipeline.start("producer", env=env)
    try:
        time.sleep(seconds)
        text = metrics_text(port)
    finally:
        for running in (process, simulator):
            running.terminate()
            running.wait(30)
    return histogram_quantiles(text, "producer_delivery_seconds", (0.5, 0.99))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000, help="tickers per product")
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with throwaway_pipeline("bench") as pipeline:
        simulator, url = start_simulator(rate=0, count=args.count)
        try:
            transport_s, frames = asyncio.run(read_stream(url, len(PRODUCTS) * args.count))
        finally:
            simulator.terminate()
            simulator.wait(10)
        kafka_s = kafka_bound(pipeline, frames)
        producer = run_producer(pipeline, args.count)
    with throwaway_pipeline("bench") as pipeline:
        latency = delivery_latency(pipeline, args.latency_seconds)
    transport, kafka = len(frames) / transport_s, len(frames) / kafka_s
    result: dict[str, Any] = {
        "producer": producer,
        "transport_bound_messages_per_s": transport,
        "kafka_bound_messages_per_s": kafka,
        "ratio_to_transport_bound": producer["messages_per_s"] / transport,
        "ratio_to_kafka_bound": producer["messages_per_s"] / kafka,
        "latency_s": latency,
    }
    print_table(
        "producer: simulator -> producer -> Kafka",
        [
            ("producer messages/s", f"{producer['messages_per_s']:,.0f}"),
            ("transport bound messages/s (bare websockets reader)", f"{transport:,.0f}"),
            ("Kafka bound messages/s (confluent-kafka from a list)", f"{kafka:,.0f}"),
            (
                "ratio to transport bound / to Kafka bound",
                f"{result['ratio_to_transport_bound']:.2f} / {result['ratio_to_kafka_bound']:.2f}",
            ),
            ("CPU seconds per 100k messages", f"{producer['cpu_s_per_100k']:.2f}"),
            ("peak resident memory MB", f"{producer['peak_rss_mb']:.0f}"),
            (
                "received -> acked p50 / p99 at 100 msg/s/product (<= bucket)",
                f"{latency['p50'] * 1000:.0f} ms / {latency['p99'] * 1000:.0f} ms",
            ),
        ],
    )
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
