"""Fixtures: real Kafka and MariaDB (started by ops/services.py), per-test topics and databases.

The throwaway pipeline itself lives in ops/pipeline.py (drills and benchmarks use it too);
its names are re-exported here for the tests that import them from this module.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from ops.pipeline import (
    APP_PASSWORD,
    APP_USER,
    PRODUCTS,
    ROOT,
    Pipeline,
    Services,
    create_database,
    create_topic,
    python_env,
)

__all__ = [
    "APP_PASSWORD",
    "APP_USER",
    "PRODUCTS",
    "ROOT",
    "Pipeline",
    "Services",
    "create_database",
    "create_topic",
    "python_env",
]


@pytest.fixture(autouse=True)
def _no_stray_services() -> Iterator[None]:
    """A test that fails half-way must not leave a producer or consumer running."""
    yield
    from tests.factories import kill_leftovers  # factories imports this module

    kill_leftovers()


@pytest.fixture(scope="session")
def services() -> Services:
    subprocess.run([sys.executable, "ops/services.py", "up"], check=True, cwd=ROOT)
    return Services.from_environment()


@pytest.fixture
def pipeline(services: Services) -> Iterator[Pipeline]:
    """Fresh topics (one partition per product), a fresh database and group for one test."""
    found = Pipeline.create("test", PRODUCTS, services)
    yield found
    found.drop()
