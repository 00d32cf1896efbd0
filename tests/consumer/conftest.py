"""Every consumer test that runs a pipeline runs on both MySQL write paths.

`MYSQL_BULK_LOAD=off` forces the multi-row INSERT path; `on` forces LOAD DATA LOCAL
INFILE and stops the consumer at start-up if the server refused it, so a test of the
bulk path can't silently fall back to INSERT.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from tests.conftest import Pipeline

WRITE_PATHS = {"insert": "off", "load_data": "on"}


@dataclass
class WritePathPipeline(Pipeline):
    """A pipeline whose services get MYSQL_BULK_LOAD for one write path."""

    bulk_load: str = "off"

    def env(self, **overrides: str) -> dict[str, str]:
        return super().env(**{"MYSQL_BULK_LOAD": self.bulk_load, **overrides})


@pytest.fixture(params=list(WRITE_PATHS))
def write_path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pipeline(pipeline: Pipeline, write_path: str) -> Pipeline:
    fields = {item.name: getattr(pipeline, item.name) for item in dataclasses.fields(pipeline)}
    return WritePathPipeline(**fields, bulk_load=WRITE_PATHS[write_path])
