"""`make test-containers`: the images built and the compose stack run by the real tools.

    python -m ops.containers

Installs what is missing (Debian's docker.io, the Compose plugin, a stand-in Python base
image; each cached), starts dockerd by PID file (host network only), then checks:
compose config of every profile; the build of every image and what each carries; the demo
profile up (redpanda and mysql replaced by probes of the broker and MariaDB that
`make services-up` runs, see ops/compose-check.yml) with every app container healthy within
60 s, rows for every product, the analysis API and chart page, uid 10001 and a read-only root
file system; the per-instrument consumers, each writing only its product; `docker compose
stop` with every exit code 0 and a row for every trade ticker the producer delivered. Prints
image sizes and the time each step took. Stops only what it started; the images stay, for
the next run. Runs on throwaway topics, consumer group and database, dropped afterwards.

The steps are in ops/container_checks.py, the compose project in ops/compose_check.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from ops import (
    base_image,
    compose_plugin,
    docker_engine,
    kafka_broker,
    mysql_server,
)
from ops.compose_check import (
    DEMO,
    PER_INSTRUMENT,
    CheckFailed,
    Compose,
    compose_env,
    save_logs,
    up_healthy,
    wait_for,
)
from ops.container_checks import (
    build_images,
    check_api,
    check_config,
    check_images,
    check_locked_down,
    check_per_instrument,
    check_stop,
    rows_by_product,
)
from ops.docker_engine import say
from ops.pipeline import PRODUCTS, Pipeline
from ops.processes import ROOT, port_open


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


def drop(pipeline: Pipeline) -> bool:
    pipeline.drop()
    return True


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
