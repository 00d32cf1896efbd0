"""Repair and the real consumer: the one-shot run waits until `trade` shows the holes closed,
and the rows from REST equal the simulator's trades (source 'rest', no sequence)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from ops.pipeline import Pipeline
from tests.factories import start_service, stop_service

from .harness import market, run_repair, store_except, summary

pytestmark = pytest.mark.timeout(90)


def test_the_consumer_closes_what_repair_published(tape: Pipeline) -> None:
    consumer = start_service("consumer", tape, LOG_LEVEL="WARNING")
    try:
        with market(count=1000) as sim:
            missing = store_except(tape, sim, {"BTC-USD": [(10, 1209)], "BTC-EUR": [(3, 3)]})
            result = summary(run_repair(tape, sim.rest_url, REPAIR_WAIT_S="30"))
            made = {(t.product_id, t.trade_id): t for ts in sim.trades().values() for t in ts}
    finally:
        code, stderr = stop_service(consumer)
    assert code == 0, stderr
    assert result["verified_in_table"] is True and result["trades_fetched"] == 1201
    rows = tape.rows(
        "SELECT product_id, trade_id, side, price, size, time, sequence, maker_order_id, "
        "source FROM `trade` WHERE source = 'rest'"
    )
    assert {(p, i) for p, i, *_ in rows} == {(p, i) for p, ids in missing.items() for i in ids}
    for product, trade_id, side, price, size, time, sequence, maker, _ in rows:
        trade = made[(product, trade_id)]
        stamp = datetime.fromisoformat(trade.time.replace("Z", "+00:00")).replace(tzinfo=None)
        assert (side, price, size, time) == (
            trade.side, Decimal(trade.price), Decimal(trade.size), stamp
        )  # fmt: skip
        assert sequence is None and maker is None
    for product in tape.products:
        low, high, count = tape.rows(
            "SELECT MIN(trade_id), MAX(trade_id), COUNT(*) FROM `trade` WHERE product_id = %s",
            product,
        )[0]
        assert high - low + 1 == count, f"{product}: the tape has a hole"
