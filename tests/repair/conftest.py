"""Fixtures of the repair tests: a pipeline with its trade tape, readable by ticker_reader."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ops.pipeline import PRODUCTS, Pipeline, Services

from .harness import grant_reader


@pytest.fixture
def tape(services: Services) -> Iterator[Pipeline]:
    found = Pipeline.create("repair", PRODUCTS, services).with_trade_tape()
    grant_reader(found)
    yield found
    found.drop()
