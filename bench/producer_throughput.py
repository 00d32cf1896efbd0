"""Producer benchmark: simulator -> producer -> Kafka, beside two bounds from the same run.

On the same seeded, unpaced simulator stream: the transport bound (a bare websockets
client reads and discards), the Kafka bound (confluent-kafka produces the same bytes from
a list, with the producer's settings), and `python -m producer` from first frame to last
in Kafka, with CPU per 100k messages and peak memory; then frame received -> delivery
report p50/p99 at 100 msg/s per product from the producer's histogram (bucket bounds).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition
from websockets.asyncio.client import connect

from bench import report
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
    producer run does not use (the pipeline's dead-letter topic); the flush is timed too."""
    with pipeline.producing(pipeline.dlq_topic, source="bench") as send:
        started = time.perf_counter()
        for number, frame in enumerate(frames):
            send(number % len(PRODUCTS), time.time_ns(), frame)
    return time.perf_counter() - started


def run_producer(pipeline: Pipeline, count: int) -> dict[str, float]:
    """The producer through the whole stream: rate, CPU per 100k, peak RSS."""
    expected = len(PRODUCTS) * (count + 1)  # + one snapshot per product
    reader = Consumer({"bootstrap.servers": pipeline.services.bootstrap, "group.id": "bench"})
    partitions = [TopicPartition(pipeline.topic, p) for p in range(len(PRODUCTS))]
    with report.simulated_feed(pipeline, 0, count, FEED_CONNECTIONS="1") as (_, start):
        pid = start("producer", PRODUCER_BUFFER_MESSAGES="1000000").pid
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if sum(reader.get_watermark_offsets(tp, 10)[1] for tp in partitions) >= expected:
                break
            time.sleep(0.05)
        finished, cpu, rss = time.time(), report.cpu_seconds(pid), report.peak_rss_mb(pid)
    stamps = []  # CreateTime of each partition's first record (set at produce())
    for partition in partitions:
        reader.assign([TopicPartition(pipeline.topic, partition.partition, 0)])
        message = reader.poll(10)
        if message is not None and message.error() is None:
            stamps.append(message.timestamp()[1] / 1000)
    reader.close()
    seconds = finished - min(stamps, default=0.0)
    return {"messages": expected, "seconds": seconds, "messages_per_s": expected / seconds,
            "cpu_s_per_100k": cpu / expected * 100_000, "peak_rss_mb": rss}  # fmt: skip


def delivery_latency(pipeline: Pipeline, seconds: float) -> dict[str, float]:
    """Received -> acked at 100 msg/s per product, from the producer's own histogram."""
    port = free_port()
    with report.simulated_feed(pipeline, 100) as (_, start):
        start("producer", PRODUCER_METRICS_PORT=str(port))
        time.sleep(seconds)
        text = report.metrics_text(port)
    return report.histogram_quantiles(text, "producer_delivery_seconds", (0.5, 0.99))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    arguments = report.parser(__doc__, "bench.producer_throughput")
    arguments.add_argument("--json", type=Path, help="write the results here")
    arguments.add_argument("--count", type=int, default=100_000, help="tickers per product")
    arguments.add_argument("--latency-seconds", type=float, default=20)
    args = arguments.parse_args(argv)
    with throwaway_pipeline("bench") as pipeline:
        with report.simulated_feed(pipeline, 0, args.count) as (url, _):
            transport_s, frames = asyncio.run(read_stream(url, len(PRODUCTS) * args.count))
        kafka_s = kafka_bound(pipeline, frames)
        producer = run_producer(pipeline, args.count)
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
    ratios = (result["ratio_to_transport_bound"], result["ratio_to_kafka_bound"])
    rows = {
        "producer messages/s": f"{producer['messages_per_s']:,.0f}",
        "transport bound messages/s (bare websockets reader)": f"{transport:,.0f}",
        "Kafka bound messages/s (confluent-kafka from a list)": f"{kafka:,.0f}",
        "ratio to transport bound / to Kafka bound": "{:.2f} / {:.2f}".format(*ratios),
        "CPU seconds per 100k messages": f"{producer['cpu_s_per_100k']:.2f}",
        "peak resident memory MB": f"{producer['peak_rss_mb']:.0f}",
        "received -> acked p50 / p99 at 100 msg/s/product (<= bucket)": (
            f"{latency['p50'] * 1000:.0f} ms / {latency['p99'] * 1000:.0f} ms"
        ),
    }
    report.print_table("producer: simulator -> producer -> Kafka", list(rows.items()))
    report.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
