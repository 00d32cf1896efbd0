"""The steps of `make test-containers`, each raising CheckFailed with what it found: the
compose file's config, the images (built, and what each carries), the demo and per-instrument
runs, and the stop that loses nothing."""

from __future__ import annotations

import json
import re
import subprocess
import time

from confluent_kafka import Consumer, TopicPartition

from ops import images
from ops.compose_check import (
    DEMO,
    PER_INSTRUMENT,
    PROFILES,
    TAG,
    CheckFailed,
    Compose,
    docker,
    expect_exit_zero,
    up_healthy,
    wait_for,
)
from ops.docker_engine import say
from ops.http import http_get
from ops.pipeline import PRODUCTS, Pipeline
from ops.processes import ROOT


def check_config(env: dict[str, str]) -> None:
    """docker-compose.yml alone, as a user runs it, in every profile; then with the override."""
    for profiles in PROFILES:
        flags = [part for profile in profiles for part in ("--profile", profile)]
        result = subprocess.run(
            ["docker", "compose", "-f", "docker-compose.yml", *flags, "config", "-q"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise CheckFailed(f"compose config {profiles or 'default'}: {result.stderr.strip()}")
        say(f"   compose config ok: {'+'.join(profiles) or 'default'}")
    Compose(env)("config", "-q")


def build_images(compose: Compose, python_image: str) -> None:
    """One service per image (simulator and the per-instrument consumers share them), one at
    a time: the classic builder runs every stage before the target, so parallel builds would
    repeat the same pip installs, where one after another reuse the cached layers."""
    services = ("topics", "producer", "consumer", "analysis", "repair")
    args = ("build", "--build-arg", f"PYTHON_IMAGE={python_image}", *services)
    compose(*args, parallel=1, quiet=False)


def check_images(python_image: str) -> dict[str, int]:
    """Each image imports every module of what it runs and holds exactly its lock; returns
    the sizes."""
    sizes: dict[str, int] = {}
    found: list[str] = []
    for image in images.IMAGES:
        name = f"coinbase-pipeline/{image}:{TAG}"
        sizes[name] = int(docker("image", "inspect", "--format", "{{.Size}}", name))
        want = images.expected(image)
        output = docker(
            "run",
            "--rm",
            "--network",
            "none",
            "--read-only",
            name,
            "python",
            "-c",
            images.PROBE,
            images.probe_argument(want),
        )
        found += images.problems(want, json.loads(output))
    base_size = int(docker("image", "inspect", "--format", "{{.Size}}", python_image))
    sizes[python_image + " (base)"] = base_size
    if found:
        raise CheckFailed("images:\n  " + "\n  ".join(found))
    return sizes


def rows_by_product(pipeline: Pipeline) -> dict[str, int]:
    rows = pipeline.rows("SELECT product_id, COUNT(*) FROM `order` GROUP BY product_id")
    return {str(product): int(count) for product, count in rows}


def check_api(env: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{env['ANALYSIS_PORT']}"
    status, body = http_get(f"{base}/products", timeout_s=10)
    products = {entry["id"] for entry in json.loads(body)} if status == 200 else set()
    if products != set(PRODUCTS):
        raise CheckFailed(f"/products answered {status}: {body[:300]!r}")
    status, body = http_get(f"{base}/products/BTC-USD/candles?granularity=60", timeout_s=10)
    if status != 200 or not json.loads(body):
        raise CheckFailed(f"/products/BTC-USD/candles answered {status}: {body[:300]!r}")
    status, body = http_get(f"{base}/", timeout_s=10)
    if status != 200 or b"<html" not in body.lower():
        raise CheckFailed(f"the chart page answered {status}: {body[:300]!r}")
    say(f"   /products, candles and the chart page answer ({sorted(products)})")


# Inside a container: its uid, and whether it may write outside /tmp and inside it.
LOCKED_DOWN_PROBE = """
import json, os
result = {"uid": os.getuid(), "gid": os.getgid()}
for path in ("/app/probe", "/probe", "/tmp/probe"):
    try:
        open(path, "w").close()
        result[path] = "written"
    except OSError as error:
        result[path] = error.strerror
print(json.dumps(result))
"""


def check_locked_down(compose: Compose, services: list[str]) -> None:
    for service in services:
        state = compose.state(service)
        seen = json.loads(docker("exec", state["Id"], "python", "-c", LOCKED_DOWN_PROBE))
        wanted = {
            "uid": 10001,
            "gid": 10001,
            "/app/probe": "Read-only file system",
            "/probe": "Read-only file system",
            "/tmp/probe": "written",
        }
        read_only = state["HostConfig"]["ReadonlyRootfs"]
        if seen != wanted or not read_only:
            raise CheckFailed(f"{service}: {seen}, read-only root file system: {read_only}")
    say(f"   uid 10001, read-only root, writable /tmp only: {', '.join(services)}")


def metric_samples(port: str, metric: str, **where: str) -> dict[str, float]:
    """{product label: value} of `metric` at a service's /metrics, summed over the samples whose
    labels match `where` (a label the metric does not have matches)."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout_s=5)
    found: dict[str, float] = {}
    for line in body.decode().splitlines() if status == 200 else ():
        if line.startswith(metric + "{"):
            text, _, value = line.rpartition(" ")
            labels = dict(re.findall(r'(\w+)="([^"]*)"', text))
            if all(labels.get(name, wanted) == wanted for name, wanted in where.items()):
                product = labels["product"]
                found[product] = found.get(product, 0.0) + float(value)
    return found


def check_per_instrument(compose: Compose, env: dict[str, str], pipeline: Pipeline) -> None:
    """The all-products consumer stopped, one per instrument started: each writes only its
    product, all three write."""
    compose("stop", "consumer")
    expect_exit_zero(compose, ["consumer"])
    before = rows_by_product(pipeline)
    up_healthy(compose, list(PER_INSTRUMENT))
    ports = {
        service: env[f"{product.replace('-', '_')}_METRICS_PORT"]
        for service, product in PER_INSTRUMENT.items()
    }

    def each_writes_its_own() -> bool:
        for service, product in PER_INSTRUMENT.items():
            everything = metric_samples(ports[service], "consumer_rows_written_total")
            others = {p: v for p, v in everything.items() if p != product and v > 0}
            if others:
                raise CheckFailed(f"{service} wrote other products: {others}")
            written = metric_samples(ports[service], "consumer_rows_written_total", table="order")
            if written.get(product, 0) <= 0:
                return False
        return True

    wait_for("each per-instrument consumer writes its product", each_writes_its_own, 60)
    after = rows_by_product(pipeline)
    if not all(after.get(p, 0) > before.get(p, 0) for p in PRODUCTS):
        raise CheckFailed(f"rows did not grow for every product: {before} -> {after}")
    say(f"   each consumer wrote only its product; rows {before} -> {after}")


def delivered(compose: Compose) -> int:
    """Ticks the producer's closing line reports delivered, summed over products."""
    for line in reversed(compose("logs", "--no-log-prefix", "--no-color", "producer").splitlines()):
        if '"producer stopped"' in line:
            return sum(json.loads(line)["delivered"].values())
    raise CheckFailed("the producer logged no closing line")


def topic_ticks(pipeline: Pipeline) -> tuple[list[tuple[str, int]], int]:
    """(product, sequence) of every trade ticker in the check's topic, read from Kafka, and
    how many subscribe-time snapshots (no trade_id: no row, by design) it holds besides."""
    ends = pipeline.end_offsets()
    consumer = Consumer(
        {
            "bootstrap.servers": pipeline.services.bootstrap,
            "group.id": "containers-check",
            "enable.auto.commit": False,  # reads only: leaves no offsets behind
        }
    )
    trades: list[tuple[str, int]] = []
    snapshots = 0
    try:
        consumer.assign([TopicPartition(pipeline.topic, p, 0) for p in range(len(ends))])
        deadline = time.monotonic() + 30
        while len(trades) + snapshots < sum(ends) and time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None or message.error() is not None:
                continue
            frame = json.loads(message.value() or b"{}")
            if frame.get("trade_id") is None:
                snapshots += 1
            else:
                trades.append((frame["product_id"], int(frame["sequence"])))
    finally:
        consumer.close()
    return trades, snapshots


def check_stop(compose: Compose, pipeline: Pipeline) -> None:
    """The producer stops first (it says what it delivered); once the consumers have written
    all of it, everything stops: every exit code 0, one row per tick delivered."""
    compose("stop", "producer")
    expect_exit_zero(compose, ["producer"])
    sent = delivered(compose)
    trades, snapshots = topic_ticks(pipeline)
    if len(trades) + snapshots != sent:
        found = len(trades) + snapshots
        raise CheckFailed(f"the producer says {sent} delivered, the topic holds {found}")
    ticks = set(trades)  # a trade the feed repeats (same product and sequence) is one row
    try:
        wait_for("a row for every trade delivered", lambda: pipeline.keys() >= ticks, 60)
    except CheckFailed as failure:
        missing = sorted(ticks - pipeline.keys())
        raise CheckFailed(f"{failure}: {len(missing)} missing: {missing[:12]}") from None
    compose("stop")
    services = [*DEMO, *PER_INSTRUMENT, "redpanda", "mysql"]
    expect_exit_zero(compose, services)
    if pipeline.keys() != ticks:
        raise CheckFailed(f"rows {len(pipeline.keys())} != {len(ticks)} trades delivered")
    if dead := pipeline.dead_letters():
        raise CheckFailed(f"{dead} dead letters from the simulator's well-formed feed")
    say(
        f"   every container exited 0; rows {len(ticks)} = {sent} ticks delivered - {snapshots}"
        f" subscribe-time snapshots - {len(trades) - len(ticks)} repeated trades"
    )
