"""EXPLAIN of every statement the API runs: each is served by the index it names.

Run with `-s` to see the plans; they are also attached to the test report on failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pymysql
import pytest

from analysis import queries, tape_queries
from tests.analysis import dataset
from tests.analysis.conftest import READER, READER_PASSWORD, drop_database, make_database
from tests.conftest import Services

START, END = dataset.T0, dataset.T0 + timedelta(hours=5)
PRODUCT = {"product": "BTC-EUR", "start": START, "end": END}
CASES: dict[str, tuple[str, Any]] = {
    "candles": (queries.CANDLES, {"g": 60, **PRODUCT}),
    "ticker": (queries.TICKER, {"product": "BTC-EUR"}),
    "stats": (queries.STATS, PRODUCT),
    "largest trades, 3 products": (
        queries.largest_sql(3),
        ["BTC-USD", START, 10, "ETH-BTC", START, 10, "BTC-EUR", START, 10, 10],
    ),
    "products": (queries.PRODUCTS, ()),
    "count": (queries.COUNT, ("BTC-EUR",)),
    "exists": (queries.EXISTS, ("BTC-EUR",)),
    "coverage bounds": (queries.BOUNDS, PRODUCT),
    "coverage gaps": (queries.GAPS, {**PRODUCT, "gap_us": 60_000_000, "limit": 100}),
    "trades, latest page": (tape_queries.TRADES_LATEST, {"product": "BTC-EUR", "limit": 1000}),
    "trades, older page": (
        tape_queries.TRADES_OLDER,
        {"product": "BTC-EUR", "cursor": 5500, "limit": 1000},
    ),
    "trades, newer page": (
        tape_queries.TRADES_NEWER,
        {"product": "BTC-EUR", "cursor": 5500, "limit": 1000},
    ),
    "tape exists": (tape_queries.TAPE_EXISTS, ("BTC-EUR",)),
    "tape edges": (tape_queries.TAPE_EDGES, PRODUCT),
    "tape counts": (tape_queries.TAPE_COUNTS, {"product": "BTC-EUR", "low": 5000, "high": 5900}),
    "tape holes": (
        tape_queries.TAPE_HOLES,
        {"product": "BTC-EUR", "low": 5000, "high": 5900, "limit": 100},
    ),
    "trade candles": (tape_queries.TRADE_CANDLES, {"g": 60, **PRODUCT}),
}


@pytest.fixture(scope="module")
def reader(services: Services) -> Iterator[pymysql.Connection[Any]]:
    database = make_database(services)
    with services.admin() as connection:
        ticks = dataset.history_ticks()
        dataset.insert(connection, database, ticks)
        dataset.insert_trades(connection, database, dataset.history_tape(ticks))
        connection.cursor().execute(f"ANALYZE TABLE `{database}`.`order`, `{database}`.`trade`")
    connection = services.connect(
        READER, READER_PASSWORD, database, cursorclass=pymysql.cursors.DictCursor
    )
    try:
        yield connection
    finally:
        connection.close()
        drop_database(services, database)


def explain(reader: pymysql.Connection[Any], name: str) -> list[dict[str, Any]]:
    sql, args = CASES[name]
    with reader.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, args)
        plan = list(cursor.fetchall())
    print(f"\nEXPLAIN {name}:")
    for step in plan:
        print(
            "  "
            + "  ".join(
                f"{key}={step[key]}"
                for key in ("id", "select_type", "table", "type", "key", "rows", "Extra")
            )
        )
    return plan


def on(plan: list[dict[str, Any]], table: str) -> list[dict[str, Any]]:
    return [step for step in plan if step["table"] == table]


@pytest.mark.parametrize("name", ["candles", "stats"])
def test_aggregates_read_the_covering_index_only(reader: Any, name: str) -> None:
    plan = explain(reader, name)
    (scan,) = [step for step in plan if step["select_type"] == "DERIVED"]
    assert scan["key"] == "order_product_time_price_size"
    assert scan["type"] == "range"
    assert "Using index" in scan["Extra"]  # the table's rows are never read
    # Open and close: one index step each, per bucket, no sort.
    lookups = [step for step in plan if step["select_type"] == "DEPENDENT SUBQUERY"]
    assert len(lookups) == 2
    for step in lookups:
        assert (step["key"], step["type"]) == ("order_product_time", "ref")
        assert "filesort" not in step["Extra"]


def test_coverage_bounds_are_two_index_lookups(reader: Any) -> None:
    (step,) = explain(reader, "coverage bounds")
    # MIN/MAX of an index range: answered from the two ends of the index while planning.
    assert step["Extra"] == "Select tables optimized away" or (
        step["key"] == "order_product_time" and "Using index" in step["Extra"]
    )


def test_ticker_is_one_index_step_without_a_sort(reader: Any) -> None:
    (step,) = explain(reader, "ticker")
    assert step["key"] == "order_product_time"
    assert step["type"] == "ref"
    assert "filesort" not in (step["Extra"] or "")


def test_largest_trades_scan_the_index_and_fetch_only_the_winners(reader: Any) -> None:
    plan = explain(reader, "largest trades, 3 products")
    unions = [step for step in plan if step["select_type"] in ("DERIVED", "UNION")]
    assert len(unions) == 3
    for step in unions:
        assert step["key"] == "order_product_time_price_size"
        assert "Using index" in step["Extra"]
    (fetch,) = on(plan, "o")
    assert (fetch["type"], fetch["key"]) == ("eq_ref", "PRIMARY")


def test_products_is_a_loose_index_scan(reader: Any) -> None:
    (step,) = explain(reader, "products")
    assert step["key"] == "order_product_time"
    assert "Using index for group-by" in step["Extra"]


def test_count_exists_and_gaps_stay_in_an_index(reader: Any) -> None:
    (count,) = explain(reader, "count")
    assert count["key"] == "order_product_time" and "Using index" in count["Extra"]
    (exists,) = explain(reader, "exists")
    assert (exists["key"], exists["type"]) == ("PRIMARY", "ref")
    gaps = explain(reader, "coverage gaps")
    (scan,) = [step for step in gaps if step["key"]]
    assert scan["key"] == "order_product_time" and "Using index" in scan["Extra"]
    assert scan["type"] == "range"


PAGES = ["trades, latest page", "trades, older page", "trades, newer page"]


@pytest.mark.parametrize("name", PAGES)
def test_trade_pages_are_primary_key_ranges_without_a_sort(reader: Any, name: str) -> None:
    (step,) = explain(reader, name)
    assert step["key"] == "PRIMARY"
    assert step["type"] in ("range", "ref")
    assert "filesort" not in (step["Extra"] or "")


def test_tape_edges_are_four_index_steps(reader: Any) -> None:
    plan = explain(reader, "tape edges")
    steps = [step for step in plan if step["table"] == "trade"]
    assert len(steps) == 4
    for step in steps:
        assert step["key"] == "trade_product_time"
        assert "filesort" not in (step["Extra"] or "")
        assert "Using index" in step["Extra"]


def test_tape_counts_and_holes_scan_a_primary_key_range(reader: Any) -> None:
    (count,) = explain(reader, "tape counts")
    assert (count["key"], count["type"]) == ("PRIMARY", "range")
    (exists,) = explain(reader, "tape exists")
    assert (exists["key"], exists["type"]) == ("PRIMARY", "ref")
    holes = explain(reader, "tape holes")
    (scan,) = on(holes, "trade")
    assert (scan["key"], scan["type"]) == ("PRIMARY", "range")
    assert "Using index" in scan["Extra"]  # trade_id is the key itself: no row is read
    assert "filesort" not in scan["Extra"]  # LAG runs in key order
    # The outer ORDER BY sorts the holes only (the WHERE has kept nothing else).
    (outer,) = [step for step in holes if step["select_type"] == "PRIMARY"]
    assert outer["Extra"].startswith("Using where")


def test_trade_candles_read_the_covering_index_only(reader: Any) -> None:
    plan = explain(reader, "trade candles")
    (scan,) = [step for step in plan if step["select_type"] == "DERIVED"]
    assert scan["key"] == "trade_product_time_price_size"
    assert scan["type"] == "range"
    assert "Using index" in scan["Extra"]
    lookups = [step for step in plan if step["select_type"] == "DEPENDENT SUBQUERY"]
    assert len(lookups) == 2
    for step in lookups:
        assert (step["key"], step["type"]) == ("trade_product_time", "ref")
        assert "filesort" not in step["Extra"]


def test_every_statement_is_explained(reader: Any) -> None:
    """A new statement in queries.py or tape_queries.py must get a case here."""
    fragments = ("FIRST_AT", "LAST_AT", "LARGEST_ONE", "LARGEST", "PAGE_COLUMNS", "STEP")
    named = {
        value
        for module in (queries, tape_queries)
        for key, value in vars(module).items()
        if key.isupper() and isinstance(value, str) and "SELECT" in value and key not in fragments
    }
    explained = {sql for sql, _ in CASES.values()}
    assert named <= explained
