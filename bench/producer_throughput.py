"""Producer benchmark: simulator -> producer -> Kafka, beside two bounds from the same run.

    .venv/bin/python -m bench.producer_throughput --count 100000 [--json out.json]

Measured, each on the same simulator stream (seeded, rate unlimited):
- transport bound: a bare websockets client reads the stream and discards it;
- Kafka bound: confluent-kafka produces the same bytes from a list (same settings as
  the producer: idempotent, acks=all, lz4);
- the producer: `python -m producer` from first frame to the last one in Kafka;
  CPU seconds per 100k messages and peak resident memory from /proc;
- live-like latency: 100 msg/s per product, frame received -> delivery report, p50/p99
  from the producer's own histogram (upper bucket bounds).
Ratios to the bounds matter more than absolute numbers on these noisy machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from websockets.asyncio.client import connect

from bench.report import Process, free_port, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS = ("ETH-BTC", "BTC-USD", "BTC-EUR")
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")


def start_simulator(rate: float, count: int | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "simulator",
        "--port",
        str(port),
        "--seed",
        "1",
        "--rate",
        str(rate),
        "--products",
        ",".join(PRODUCTS),
        "--log-level",
        "WARNING",
    ]
    if count is not None:
        command += ["--count", str(count)]
    process = subprocess.Popen(command, cwd=ROOT)
    url = f"ws://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=0.5)
        except OSError as exc:  # an HTTP error means the server is listening
            if getattr(exc, "code", None) is not None:
                return process, url
            time.sleep(0.1)
    return process, url


async def read_stream(url: str, expected: int) -> tuple[float, list[bytes]]:
    """The transport bound: read `expected` ticker frames, keep them, do nothing else."""
    frames: list[bytes] = []
    async with connect(url, max_size=2**20) as websocket:
        await websocket.send(
            orjson.dumps(
                {
                    "type": "subscribe",
                    "product_ids": list(PRODUCTS),
                    "channels": ["ticker", "heartbeat"],
                }
            )
        )
        started = 0.0
        while len(frames) < expected:
            frame = await websocket.recv(decode=False)
            if b'"type":"ticker"' in frame[:20]:
                if not frames:
                    started = time.perf_counter()
                frames.append(frame)
        return time.perf_counter() - started, frames


def kafka_bound(frames: list[bytes], topic: str) -> float:
    producer = Producer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    started = time.perf_counter()
    for number, frame in enumerate(frames):
        producer.produce(
            topic,
            frame,
            key=PRODUCTS[number % 3],
            partition=number % 3,
            headers=[("received_ns", str(time.time_ns())), ("source", "bench")],
        )
        if number % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return time.perf_counter() - started


def create_topics(*names: str) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=3, replication_factor=1) for name in names]
    )
    for future in futures.values():
        future.result(30)


def delete_topics(*names: str) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for future in admin.delete_topics(list(names)).values():
        future.result(30)


def end_offsets(consumer: Consumer, topic: str) -> int:
    return sum(
        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3)
    )


def first_timestamp_s(consumer: Consumer, topic: str) -> float:
    """CreateTime of the earliest record over the partitions (set at produce())."""
    stamps = []
    for partition in range(3):
        consumer.assign([TopicPartition(topic, partition, 0)])
        message = consumer.poll(10)
        if message is not None and message.error() is None:
            stamps.append(message.timestamp()[1] / 1000)
    return min(stamps)


def producer_env(url: str, topic: str, metrics_port: int = 0) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "COINBASE_WS_URL": url,
        "KAFKA_TOPIC": topic,
        "KAFKA_DLQ_TOPIC": topic + ".dlq",
        "PRODUCTS": ",".join(PRODUCTS),
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        "PRODUCER_METRICS_PORT": str(metrics_port),
        "PRODUCER_BUFFER_MESSAGES": "1000000",
    }


def run_producer(count: int, topic: str) -> dict[str, float]:
    """The producer through the whole stream: rate, CPU per 100k, peak RSS."""
    simulator, url = start_simulator(rate=0, count=count)
    expected = 3 * (count + 1)  # + one snapshot per product
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "bench"})
    process = subprocess.Popen(
        [sys.executable, "-m", "producer"], cwd=ROOT, env=producer_env(url, topic)
    )
    watched = Process(process.pid)
    try:
        deadline = time.monotonic() + 600
        while end_offsets(consumer, topic) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        finished = time.time()
        cpu = watched.cpu_seconds()
        rss = watched.peak_rss_mb()
        started = first_timestamp_s(consumer, topic)
    finally:
        process.terminate()
        process.wait(30)
        simulator.terminate()
        simulator.wait(10)
        consumer.close()
    seconds = finished - started
    return {
        "messages": expected,
        "seconds": seconds,
        "messages_per_s": expected / seconds,
        "cpu_s_per_100k": cpu / expected * 100_000,
        "peak_rss_mb": rss,
    }


def bucket_counts(metrics_text: str, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a Prometheus histogram, summed over its labels."""
    counts: dict[float, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith(f"{name}_bucket"):
            bound_text = line.split('le="')[1].split('"')[0]
            bound = float("inf") if bound_text == "+Inf" else float(bound_text)
            counts[bound] = counts.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return sorted(counts.items())


def histogram_quantiles(
    metrics_text: str, name: str, quantiles: tuple[float, ...], baseline_text: str = ""
) -> dict[str, float]:
    """Upper bucket bounds holding each quantile, of what was observed since the baseline."""
    before = dict(bucket_counts(baseline_text, name))
    buckets = [
        (bound, count - before.get(bound, 0.0))
        for bound, count in bucket_counts(metrics_text, name)
    ]
    total = buckets[-1][1]
    found = {f"p{round(q * 100)}": next(b for b, c in buckets if c >= q * total) for q in quantiles}
    found["samples"] = total
    return found


def live_latency(seconds: float, topic: str) -> dict[str, float]:
    simulator, url = start_simulator(rate=100, count=None)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "producer"], cwd=ROOT, env=producer_env(url, topic, port)
    )
    try:
        time.sleep(seconds)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        process.terminate()
        process.wait(30)
        simulator.terminate()
        simulator.wait(10)
    return histogram_quantiles(text, "producer_delivery_seconds", (0.5, 0.99))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000, help="tickers per product")
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    suffix = uuid.uuid4().hex[:8]
    bound_topic, producer_topic, latency_topic = (
        f"bench.{kind}.{suffix}" for kind in ("bound", "producer", "latency")
    )
    create_topics(
        bound_topic, producer_topic, latency_topic, producer_topic + ".dlq", latency_topic + ".dlq"
    )
    try:
        simulator, url = start_simulator(rate=0, count=args.count)
        try:
            transport_s, frames = asyncio.run(read_stream(url, 3 * args.count))
        finally:
            simulator.terminate()
            simulator.wait(10)
        kafka_s = kafka_bound(frames, bound_topic)
        producer = run_producer(args.count, producer_topic)
        latency = live_latency(args.latency_seconds, latency_topic)
    finally:
        delete_topics(
            bound_topic,
            producer_topic,
            latency_topic,
            producer_topic + ".dlq",
            latency_topic + ".dlq",
        )
    transport_rate = len(frames) / transport_s
    kafka_rate = len(frames) / kafka_s
    result: dict[str, Any] = {
        "producer": producer,
        "transport_bound_messages_per_s": transport_rate,
        "kafka_bound_messages_per_s": kafka_rate,
        "ratio_to_transport_bound": producer["messages_per_s"] / transport_rate,
        "ratio_to_kafka_bound": producer["messages_per_s"] / kafka_rate,
        "latency_s": latency,
    }
    print_table(
        "producer: simulator -> producer -> Kafka",
        [
            ("producer messages/s", f"{producer['messages_per_s']:,.0f}"),
            ("transport bound messages/s (bare websockets reader)", f"{transport_rate:,.0f}"),
            ("Kafka bound messages/s (confluent-kafka from a list)", f"{kafka_rate:,.0f}"),
            ("ratio to transport bound", f"{result['ratio_to_transport_bound']:.2f}"),
            ("ratio to Kafka bound", f"{result['ratio_to_kafka_bound']:.2f}"),
            ("CPU seconds per 100k messages", f"{producer['cpu_s_per_100k']:.2f}"),
            ("peak resident memory MB", f"{producer['peak_rss_mb']:.0f}"),
            (
                "latency p50 / p99 at 100 msg/s/product (<= bucket)",
                f"{latency['p50'] * 1000:.0f} ms / {latency['p99'] * 1000:.0f} ms",
            ),
        ],
    )
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
