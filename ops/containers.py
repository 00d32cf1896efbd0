"""`make test-containers`: the images built and the compose stack run by the real tools.

    python -m ops.containers

Installs what is missing (Debian's docker.io, the Compose plugin, a stand-in Python base
image; each cached), starts dockerd by PID file (host network only), then checks:
compose config of every profile; the build of every image and what each carries; the demo
profile up (redpanda and mysql replaced by probes of the broker and MariaDB that
`make services-up` runs, see ops/compose-check.yml) with every app container healthy within
60 s, rows for every product, the analysis API and chart page, uid 10001 and a read-only root
file system; the per-instrument consumers, each writing only its product; `docker compose
stop` with every exit code 0 and rows = ticks the producer delivered. Prints image sizes and
the time each step took. Stops only what it started; the images stay, for the next run.
Runs on throwaway topics, consumer group and database, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pymysql
from confluent_kafka import Consumer, TopicPartition

from ops import base_image, compose_plugin, docker_engine, images, kafka_broker, mysql_server
from ops.docker_engine import say
from ops.http import http_get
from ops.pipeline import PRODUCTS, Pipeline, free_port
from ops.processes import ROOT, port_open

PROJECT = "coinbase-pipeline-check"
TAG = "check"
OVERRIDE = ROOT / "ops" / "compose-check.yml"
PROFILES: tuple[tuple[str, ...], ...] = (
    (),
    ("demo",),
    ("monitoring",),
    ("per-instrument",),
    ("demo", "monitoring", "per-instrument"),
)
DEMO = ("simulator", "topics", "producer", "consumer", "analysis")
PER_INSTRUMENT = {
    "consumer-eth-btc": "ETH-BTC",
    "consumer-btc-usd": "BTC-USD",
    "consumer-btc-eur": "BTC-EUR",
}
HEALTHY_WITHIN_S = 60.0
LOGS = ROOT / ".run" / "containers" / "compose.log"


class CheckFailed(Exception):
    """One expectation of the check not met; the message says which."""


class Timings:
    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        say(f"-- {name}")
        started = time.monotonic()
        try:
            yield
        finally:
            self.steps.append((name, time.monotonic() - started))
            say(f"   {name}: {self.steps[-1][1]:.1f} s")

    def report(self, total: float) -> str:
        width = max(len(name) for name, _ in self.steps)
        lines = [f"  {name:<{width}}  {seconds:7.1f} s" for name, seconds in self.steps]
        return "\n".join(["step timings:", *lines, f"  {'total':<{width}}  {total:7.1f} s"])


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, every_s: float = 0.5) -> None:
    """Until `check()`; MariaDB restarting meanwhile (a drill on a shared machine) counts as
    not yet."""
    deadline = time.monotonic() + timeout_s
    while not answered(check):
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {timeout_s:g} s")
        time.sleep(every_s)


def answered(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except pymysql.MySQLError:
        return False


def services_up(stack: ExitStack) -> None:
    """Kafka and MariaDB answer: the ones running (a restart in progress is waited for), or
    the ones `ops/services.py up` starts, stopped afterwards."""
    addresses = (kafka_broker.BOOTSTRAP, f"{mysql_server.HOST}:{mysql_server.PORT}")
    if not any(port_open(address) for address in addresses):
        subprocess.run([sys.executable, "ops/services.py", "up"], cwd=ROOT, check=True)
        stack.callback(subprocess.run, [sys.executable, "ops/services.py", "down"], cwd=ROOT)
    wait_for("Kafka and MariaDB answer", both_ready, 120, 1)


def both_ready() -> bool:
    return kafka_broker.ready() and mysql_server.ready()


# ---------------------------------------------------------------- docker and compose


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, cwd=ROOT)
    if check and result.returncode != 0:
        raise CheckFailed(f"docker {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


class Compose:
    """`docker compose` of docker-compose.yml plus the check's override, in its own project."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, parallel: int = -1, quiet: bool = True) -> str:
        command = ["docker", "compose", "-p", PROJECT, "-f", "docker-compose.yml"]
        command += ["-f", str(OVERRIDE), "--parallel", str(parallel)]
        command += ["--profile", "demo", "--profile", "per-instrument"]
        result = subprocess.run(
            [*command, *args], cwd=ROOT, env=self.env, capture_output=quiet, text=True
        )
        if result.returncode != 0:
            detail = (result.stderr or "").strip()[-3000:]
            raise CheckFailed(f"docker compose {' '.join(args)} failed:\n{detail}")
        return result.stdout or ""

    def container(self, service: str) -> str:
        ids = self("ps", "-a", "-q", service).split()
        if len(ids) != 1:
            raise CheckFailed(f"{service}: {len(ids)} containers, expected one")
        return ids[0]

    def state(self, service: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(docker("inspect", self.container(service)))[0]
        return found


def compose_env(pipeline: Pipeline, python_image: str) -> dict[str, str]:
    """What the compose file and the override interpolate: throwaway names, free ports."""
    services = pipeline.services
    values = {
        "PYTHON_IMAGE": python_image,
        "TAG": TAG,
        "REGISTRY": "coinbase-pipeline",
        "PRODUCTS": ",".join(pipeline.products),
        "KAFKA_BOOTSTRAP_SERVERS": services.bootstrap,
        "KAFKA_PORT": services.bootstrap.split(",")[0].rpartition(":")[2],
        "KAFKA_TOPIC": pipeline.topic,
        "KAFKA_DLQ_TOPIC": pipeline.dlq_topic,
        "KAFKA_TRADES_TOPIC": pipeline.trades_topic,
        "KAFKA_GROUP_ID": pipeline.group_id,
        "MYSQL_PORT": str(services.mysql_port),
        "MYSQL_DATABASE": pipeline.database,
        "MYSQL_USER": "ticker_writer",
        "MYSQL_PASSWORD": "ticker_writer",
        "LOG_FORMAT": "json",
    }
    for name in (
        "SIMULATOR_PORT",
        "PRODUCER_METRICS_PORT",
        "CONSUMER_METRICS_PORT",
        "ANALYSIS_PORT",
        "ETH_BTC_METRICS_PORT",
        "BTC_USD_METRICS_PORT",
        "BTC_EUR_METRICS_PORT",
    ):
        values[name] = str(free_port())
    # The check's own values win over a developer's .env and shell.
    return {key: value for key, value in os.environ.items() if key not in values} | values


# ---------------------------------------------------------------- the steps


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
    services = ("topics", "producer", "consumer", "analysis")
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


def up_healthy(compose: Compose, services: list[str]) -> None:
    """`up -d` the services; every container healthy (one-shot ones: exited 0) within
    HEALTHY_WITHIN_S of the command, which itself waits for what they depend on."""
    started = time.monotonic()
    compose("up", "-d", *services)
    wait_healthy(compose, services, HEALTHY_WITHIN_S - (time.monotonic() - started))


def wait_healthy(compose: Compose, services: tuple[str, ...] | list[str], within_s: float) -> None:
    """Every service's container healthy (one-shot ones: exited 0) within `within_s`."""

    def all_healthy() -> bool:
        for service in services:
            state = compose.state(service)["State"]
            if "Health" not in state:  # the topics job
                if state["Status"] == "exited" and state["ExitCode"] != 0:
                    raise CheckFailed(f"{service} exited with {state['ExitCode']}")
                if state["Status"] != "exited":
                    return False
            elif state["Health"]["Status"] != "healthy":
                if state["Status"] != "running":
                    raise CheckFailed(f"{service} is {state['Status']} ({state['ExitCode']})")
                return False
        return True

    wait_for(f"healthy: {', '.join(services)}", all_healthy, within_s, every_s=1)


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


def metric_samples(port: str, metric: str) -> dict[str, float]:
    """{product label: value} of `metric` at a service's /metrics."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout_s=5)
    found: dict[str, float] = {}
    for line in body.decode().splitlines() if status == 200 else ():
        if line.startswith(metric + "{"):
            labels, _, value = line.rpartition(" ")
            product = labels.split('product="', 1)[1].split('"', 1)[0]
            found[product] = float(value)
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
            written = metric_samples(ports[service], "consumer_rows_written_total")
            others = {p: v for p, v in written.items() if p != product and v > 0}
            if others:
                raise CheckFailed(f"{service} wrote other products: {others}")
            if written.get(product, 0) <= 0:
                return False
        return True

    wait_for("each per-instrument consumer writes its product", each_writes_its_own, 60)
    after = rows_by_product(pipeline)
    if not all(after.get(p, 0) > before.get(p, 0) for p in PRODUCTS):
        raise CheckFailed(f"rows did not grow for every product: {before} -> {after}")
    say(f"   each consumer wrote only its product; rows {before} -> {after}")


def expect_exit_zero(compose: Compose, services: list[str]) -> None:
    for service in services:
        state = compose.state(service)["State"]
        if state["Status"] != "exited" or state["ExitCode"] != 0:
            logs = docker("logs", "--tail", "5", compose.container(service), check=False)
            code = state["ExitCode"]
            raise CheckFailed(f"{service}: {state['Status']}, exit code {code}\n{logs}")


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
        {"bootstrap.servers": pipeline.services.bootstrap, "group.id": "containers-check"}
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


def drop(pipeline: Pipeline) -> bool:
    pipeline.drop()
    return True


def save_logs(compose: Compose) -> None:
    """Every container's output, kept for a post-mortem (the containers go with `down`)."""
    LOGS.parent.mkdir(parents=True, exist_ok=True)
    LOGS.write_text(compose("logs", "--no-color", "--timestamps"))
    say(f"   containers' logs in {LOGS}")


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
    say(
        f"   every container exited 0; rows {len(ticks)} = {sent} ticks delivered - {snapshots}"
        f" subscribe-time snapshots - {len(trades) - len(ticks)} repeated trades"
    )


# ---------------------------------------------------------------- the whole check


def run(timings: Timings, stack: ExitStack) -> dict[str, int]:
    with timings.step("Kafka and MariaDB answer"):
        services_up(stack)
    with timings.step("engine (docker.io, dockerd)"):
        if docker_engine.start():
            stack.callback(docker_engine.stop)
    with timings.step("compose plugin"):
        say(f"   docker compose {compose_plugin.ensure()}")
    with timings.step("stand-in base image"):
        python_image = base_image.ensure()
    made = [Pipeline.create("ctr")]  # the last one made is dropped, whatever happens next
    stack.callback(wait_for, "throwaway topics and database dropped", lambda: drop(made[-1]), 60, 1)
    made.append(made[0].with_trade_tape())
    pipeline = made[-1]
    with pipeline.services.admin() as connection, connection.cursor() as cursor:
        for table in ("order", "trade"):
            cursor.execute(
                f"GRANT SELECT ON `{pipeline.database}`.`{table}` TO 'ticker_reader'@'%'"
            )
    env = compose_env(pipeline, python_image)
    compose = Compose(env)
    with timings.step("compose config, every profile"):
        check_config(env)
    with timings.step("compose build, every image"):
        build_images(compose, python_image)
    with timings.step("images carry what they run"):
        sizes = check_images(python_image)
    stack.callback(lambda: compose("down", "--remove-orphans", "--timeout", "40"))
    stack.callback(save_logs, compose)
    with timings.step("demo up, every app container healthy"):
        up_healthy(compose, list(DEMO))
    with timings.step("rows for every product"):
        wait_for(
            "rows for every product", lambda: set(rows_by_product(pipeline)) == set(PRODUCTS), 60
        )
    with timings.step("analysis API and chart page"):
        check_api(env)
    with timings.step("uid 10001, read-only root"):
        check_locked_down(compose, [s for s in DEMO if s != "topics"])
    with timings.step("per-instrument consumers"):
        check_per_instrument(compose, env, pipeline)
        check_locked_down(compose, list(PER_INSTRUMENT))
    with timings.step("compose stop, nothing lost"):
        check_stop(compose, pipeline)
    return sizes


def main() -> int:
    timings = Timings()
    sizes: dict[str, int] = {}
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            # Registered first, so it runs last: the clean-up's own time.
            stack.callback(lambda: timings.steps.append(("clean-up", time.monotonic() - ended)))
            try:
                sizes = run(timings, stack)
            finally:
                ended = time.monotonic()
    except CheckFailed as failure:
        say(f"FAILED: {failure}")
        return 1
    finally:
        if sizes:
            print("image sizes:")
            for name, size in sizes.items():
                print(f"  {name:<60} {size / 1e6:7.1f} MB")
        if timings.steps:
            print(timings.report(time.monotonic() - started), flush=True)
    say("containers check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
