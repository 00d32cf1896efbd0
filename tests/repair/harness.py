"""Repair against the real services: a simulator that has made its trades, a pipeline with
a private trades topic, rows put straight into its `trade` (the consumer is not needed to
make holes), and `python -m repair` as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from confluent_kafka import Message

from ops.pipeline import PRODUCTS, ROOT, Pipeline, python_env
from simulator import SimulatorConfig, SimulatorThread, Trade
from tests.factories import read_all
from tests.simulator.helpers import open_client, subscribe

READER = "ticker_reader"  # SELECT only: repair's account


@contextmanager
def market(count: int = 2500, **config: Any) -> Iterator[SimulatorThread]:
    """A simulator whose products made `count` batches of trades (~1.3 trades each), served
    by REST with `config` (rest_rate, faults...)."""
    settings = SimulatorConfig(products=PRODUCTS, rate=0, count=count, seed=7, **config)
    with SimulatorThread(settings) as sim, open_client(sim.url) as ws:
        subscribe(ws, PRODUCTS, ["ticker"])
        assert sim.wait_until(lambda s: s.done(), timeout=20)
        yield sim


def grant_reader(pipeline: Pipeline) -> None:
    with pipeline.services.admin() as connection, connection.cursor() as cursor:
        cursor.execute(f"GRANT SELECT ON `{pipeline.database}`.`trade` TO '{READER}'@'%'")


def row(trade: Trade, partition: int, offset: int, source: str = "ws") -> tuple[object, ...]:
    stamp = datetime.fromisoformat(trade.time.replace("Z", "+00:00")).replace(tzinfo=None)
    return (
        trade.product_id, trade.trade_id, trade.side, trade.price, trade.size, stamp,
        trade.sequence, trade.maker_order_id, trade.taker_order_id, source, partition, offset,
    )  # fmt: skip


def store(pipeline: Pipeline, trades: Iterable[Trade], source: str = "ws") -> int:
    """Insert rows as the consumer would (first wins on the primary key)."""
    rows = [row(t, pipeline.products.index(t.product_id), i, source) for i, t in enumerate(trades)]
    with pipeline.services.admin(pipeline.database) as connection, connection.cursor() as cursor:
        cursor.executemany(
            "INSERT IGNORE INTO `trade` (product_id, trade_id, side, price, size, time, sequence,"
            " maker_order_id, taker_order_id, source, kafka_partition, kafka_offset)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    return len(rows)


def store_except(
    pipeline: Pipeline, sim: SimulatorThread, holes: dict[str, list[tuple[int, int]]]
) -> dict[str, set[int]]:
    """Store every trade of the simulator but the holes (product -> [(first, last) by index
    into its trades]); returns the missing ids per product."""
    missing: dict[str, set[int]] = {}
    kept: list[Trade] = []
    for product, trades in sim.trades().items():
        gone = {i for first, last in holes.get(product, []) for i in range(first, last + 1)}
        missing[product] = {trades[i].trade_id for i in gone}
        kept += [t for i, t in enumerate(trades) if i not in gone]
    store(pipeline, kept)
    return missing


def repair_env(pipeline: Pipeline, rest_url: str, **env: str) -> dict[str, str]:
    values = {
        "COINBASE_REST_URL": rest_url,
        "MYSQL_USER": READER,
        "MYSQL_PASSWORD": READER,
        "REPAIR_METRICS_PORT": "0",
        "REPAIR_WAIT_S": "0",
        "REPAIR_REST_GIVE_UP_S": "10",
    }
    return python_env(pipeline.env(**(values | env)))


def start_follow(
    pipeline: Pipeline, rest_url: str, stderr: int = subprocess.PIPE, **env: str
) -> subprocess.Popen[str]:
    """`python -m repair --follow` in the background (its stderr piped unless told otherwise:
    read it with communicate(), or a long run fills the pipe)."""
    return subprocess.Popen(
        [sys.executable, "-m", "repair", "--follow"],
        cwd=ROOT,
        env=repair_env(pipeline, rest_url, **env),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


def run_repair(
    pipeline: Pipeline, rest_url: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repair", *args],
        cwd=ROOT,
        env=repair_env(pipeline, rest_url, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = orjson.loads(result.stdout.strip().splitlines()[-1])
    return found


def published(pipeline: Pipeline) -> list[Message]:
    return read_all(pipeline.services.bootstrap, pipeline.trades_topic, len(pipeline.products))


def published_ids(pipeline: Pipeline) -> dict[str, list[int]]:
    """Trade ids in the trades topic per product, in offset order (duplicates kept)."""
    found: dict[str, list[int]] = {p: [] for p in pipeline.products}
    for message in published(pipeline):
        key = message.key()
        assert key is not None
        found[key.decode()].append(orjson.loads(message.value() or b"")["trade_id"])
    return found


def rest_texts(sim: SimulatorThread) -> dict[tuple[str, int], bytes]:
    return {
        (t.product_id, t.trade_id): t.rest_text().encode()
        for trades in sim.trades().values()
        for t in trades
    }
