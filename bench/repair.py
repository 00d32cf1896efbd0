"""Repair benchmark: trades repaired per second against the simulator at its REST rate limit.

The simulator makes `--batches` trade batches per product (~1.3 trades each); `trade` holds
only each product's first and last trade, so one hole per product spans the rest. One-shot
`python -m repair` (REPAIR_WAIT_S=0: until Kafka acknowledged every trade) fetches them at
REPAIR_REST_RATE requests/s. The bound is the rate limit x 1,000 trades a page.

    python -m bench.repair [--batches 20000] [--rate 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

from websockets.sync.client import connect

from ops.pipeline import ROOT, Pipeline, python_env, throwaway_pipeline
from simulator import SimulatorConfig, SimulatorThread, Trade

PAGE = 1000  # Coinbase's largest page


def make_trades(sim: SimulatorThread, products: tuple[str, ...]) -> None:
    """Subscribe once and read until the simulator made every batch (rate 0: it sends as
    fast as this client reads)."""
    deadline = time.monotonic() + 300
    with connect(sim.url, open_timeout=5, close_timeout=0.5, max_size=None) as ws:
        ws.send(json.dumps({"type": "subscribe", "product_ids": list(products),
                            "channels": ["ticker"]}))  # fmt: skip
        while not sim.done():
            ws.recv(timeout=5)
            if time.monotonic() > deadline:
                raise TimeoutError("the simulator did not make its trades")


def store_ends(pipeline: Pipeline, trades: dict[str, list[Trade]]) -> None:
    rows = [
        (t.product_id, t.trade_id, t.side, t.price, t.size,
         datetime.fromisoformat(t.time.replace("Z", "+00:00")).replace(tzinfo=None),
         pipeline.products.index(t.product_id), 0)
        for made in trades.values() for t in (made[0], made[-1])
    ]  # fmt: skip
    with pipeline.services.admin(pipeline.database) as connection, connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO `trade` (product_id, trade_id, side, price, size, time, source,"
            " kafka_partition, kafka_offset) VALUES (%s, %s, %s, %s, %s, %s, 'ws', %s, %s)",
            rows,
        )
        cursor.execute(f"GRANT SELECT ON `{pipeline.database}`.`trade` TO 'ticker_reader'@'%'")


def run(batches: int, rate: float) -> dict[str, Any]:
    config = SimulatorConfig(
        rate=0, count=batches, seed=5, record=False, rest_rate=rate, rest_burst=15,
        trade_history=max(250_000, 2 * batches), products=("ETH-BTC", "BTC-USD", "BTC-EUR"),
    )  # fmt: skip
    with throwaway_pipeline("bench") as base, SimulatorThread(config) as sim:
        pipeline = base.with_trade_tape()
        make_trades(sim, pipeline.products)
        trades = sim.trades()
        store_ends(pipeline, trades)
        env = pipeline.env(
            COINBASE_REST_URL=sim.rest_url,
            MYSQL_USER="ticker_reader",
            MYSQL_PASSWORD="ticker_reader",
            REPAIR_WAIT_S="0",
            REPAIR_REST_RATE=str(rate),
            LOG_LEVEL="WARNING",
        )
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "repair"], cwd=ROOT, env=python_env(env),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        wall = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"repair exited {result.returncode}: {result.stderr[-2000:]}")
        summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        rest = sim.rest_counts()
    missing = sum(len(made) - 2 for made in trades.values())
    bound = rate * PAGE
    per_s = summary["trades_fetched"] / summary["seconds"]
    return {
        "missing": missing,
        "trades_fetched": summary["trades_fetched"],
        "requests": summary["requests"],
        "min_requests": sum(-(-(len(made) - 2) // PAGE) for made in trades.values()),
        "throttled_429": summary["throttled_429"],
        "simulator_requests": rest["requests"],
        "seconds": summary["seconds"],
        "wall_seconds_with_start": round(wall, 3),
        "trades_per_s": round(per_s, 1),
        "bound_trades_per_s": bound,
        "ratio": round(per_s / bound, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.repair",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batches", type=int, default=20_000, help="trade batches per product")
    parser.add_argument("--rate", type=float, default=10.0, help="REST requests/s (both sides)")
    args = parser.parse_args(argv)
    figures = run(args.batches, args.rate)
    print(
        f"repair: {figures['trades_fetched']} trades in {figures['seconds']} s = "
        f"{figures['trades_per_s']} trades/s against a bound of {figures['bound_trades_per_s']:g} "
        f"({args.rate:g} requests/s x {PAGE}): ratio {figures['ratio']}; "
        f"{figures['requests']} requests (at least {figures['min_requests']}), "
        f"{figures['throttled_429']} answered 429"
    )
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
