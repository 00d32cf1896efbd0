"""python -m repair, one-shot, over real HTTP, Kafka and MariaDB: exactly the missing ids,
once, byte for byte as REST served them, header source=rest."""

from __future__ import annotations

import pytest

from ops.pipeline import Pipeline
from repair.publish import SOURCE_REST
from shared.kafka_clients import HEADER_SOURCE

from .harness import market, published, published_ids, rest_texts, run_repair, store_except, summary

pytestmark = pytest.mark.timeout(90)


def test_holes_fetch_exactly_the_missing_ids_once(tape: Pipeline) -> None:
    with market() as sim:
        # BTC-USD: a hole of 1,500 ids (two pages); ETH-BTC: two small ones; BTC-EUR: none.
        missing = store_except(
            tape, sim, {"BTC-USD": [(100, 1599)], "ETH-BTC": [(10, 19), (30, 30)]}
        )
        result = summary(run_repair(tape, sim.rest_url))
        served = sim.rest_requests()
        texts = rest_texts(sim)
    assert result["holes"] == 3 and result["missing"] == 1511
    assert result["trades_fetched"] == 1511 and result["throttled_429"] == 0
    # ⌈1500/1000⌉ + 1 + 1 requests, each serving ids inside a hole only.
    assert result["requests"] == len(served) == 4
    for request in served:
        assert request.status == 200 and request.served is not None
        product = request.path.split("/")[2]
        newest, oldest = request.served
        assert set(range(oldest, newest + 1)) <= missing[product], request
    ids = published_ids(tape)
    assert {p: sorted(found) for p, found in ids.items()} == {
        p: sorted(found) for p, found in missing.items()
    }
    for message in published(tape):
        key = (message.key() or b"").decode()
        assert message.partition() == tape.products.index(key)
        assert dict(message.headers() or [])[HEADER_SOURCE] == SOURCE_REST.encode()
        value = message.value() or b""
        assert value == texts[(key, int(value.split(b'"trade_id":')[1].split(b",")[0]))]


def test_no_hole_no_request(tape: Pipeline) -> None:
    with market(count=50) as sim:
        store_except(tape, sim, {})
        result = summary(run_repair(tape, sim.rest_url))
        assert sim.rest_counts()["requests"] == 0
    assert result["holes"] == 0 and result["requests"] == 0
    assert published_ids(tape) == {p: [] for p in tape.products}


def test_product_and_since_bound_the_range(tape: Pipeline) -> None:
    with market(count=200) as sim:
        trades = sim.trades()["BTC-USD"]
        missing = store_except(tape, sim, {"BTC-USD": [(10, 14), (150, 154)], "ETH-BTC": [(5, 6)]})
        since = trades[100].time
        result = summary(run_repair(tape, sim.rest_url, "--product", "BTC-USD", "--since", since))
    assert result["holes"] == 1 and result["trades_fetched"] == 5
    assert sorted(published_ids(tape)["BTC-USD"]) == sorted(missing["BTC-USD"])[5:]
