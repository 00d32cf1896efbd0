"""CONSUMER_PRODUCTS: processes that each write some products (even overlapping ones) stay
exact, each writes only its own partitions, and health and metrics name what it owns."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from ops.http import http_get
from tests.conftest import Pipeline
from tests.consumer.harness import Feed, Service, assert_exact, running, subset
from tests.factories import committed, free_port, row_count, wait_for


@pytest.mark.timeout(120)
def test_processes_split_and_overlap_products_and_stay_exact(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    eth, usd, eur = pipeline.products
    feed = Feed(pipeline)
    feed.produce(500)
    port = free_port()
    only_usd = Service(
        pipeline, tmp_path, name="usd", CONSUMER_PRODUCTS=usd, CONSUMER_METRICS_PORT=str(port)
    )
    overlapping = Service(pipeline, tmp_path, name="eth-usd", CONSUMER_PRODUCTS=f"{usd},{eth}")
    with running(only_usd), running(overlapping):
        owned = [key for key in feed.expected if key[0] != eur]
        wait_for(lambda: row_count(pipeline) >= len(owned), 60, "ETH-BTC and BTC-USD rows")
        wait_for(lambda: committed(pipeline)[:2] == feed.offsets[:2], 30, "their offsets")
        health = orjson.loads(http_get(f"http://127.0.0.1:{port}/healthz")[1])
        assert health["products"] == [usd] and list(health["writers"]) == [usd]
        assert health["writers"][usd]["partition"] == 1
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")[1].decode()
        assert f'consumer_products_owned{{product="{usd}"}} 1.0' in metrics
        assert f'product="{eth}"' not in metrics and f'product="{eur}"' not in metrics
        assert committed(pipeline)[2] < 0, "BTC-EUR's partition was read by nobody"
        assert_exact(feed, "two processes", subset(feed, owned))
        for service in (only_usd, overlapping):
            code, _took = service.terminate()
            assert code == 0, service.stderr()

    with running(Service(pipeline, tmp_path, name="eur", CONSUMER_PRODUCTS=eur)) as only_eur:
        wait_for(lambda: row_count(pipeline) >= feed.total, 60, "BTC-EUR rows")
        wait_for(lambda: committed(pipeline) == feed.offsets, 30, "every offset")
        code, _took = only_eur.terminate()
        assert code == 0, only_eur.stderr()
    assert_exact(feed, "three processes")
