"""EXPLAIN of every statement the API runs: each is served by the index it names.

Run with `-s` to see the plans; they are also attached to the test report on failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pymysql
import pytest

from analysis import queries
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
}


@pytest.fixture(scope="module")
def reader(services: Services) -> Iterator[pymysql.Connection[Any]]:
    database = make_database(services)
    with services.admin() as connection:
        dataset.insert(connection, database, dataset.history_ticks())
        connection.cursor().execute(f"ANALYZE TABLE `{database}`.`order`")
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


def test_every_statement_is_explained(reader: Any) -> None:
    """A new statement in queries.py must get a case here."""
    named = {
        value
        for key, value in vars(queries).items()
        if key.isupper()
        and isinstance(value, str)
        and "SELECT" in value
        and key not in ("FIRST_AT", "LAST_AT", "LARGEST_ONE", "LARGEST")
    }
    explained = {sql for sql, _ in CASES.values()}
    assert named <= explained
