"""ops/pipeline.py: the throwaway pipeline tests, drills and benchmarks share."""

from __future__ import annotations

import pymysql
import pytest

from ops.pipeline import APP_PASSWORD, APP_USER, PRODUCTS, Services, free_port, throwaway_pipeline
from shared.settings import CommonSettings


def test_throwaway_pipeline_is_private_usable_and_dropped(services: Services) -> None:
    with throwaway_pipeline("helper", services=services) as pipeline:
        assert pipeline.products == PRODUCTS == CommonSettings.model_fields["products"].default
        topics = services.admin_client().list_topics(timeout=10).topics
        assert len(topics[pipeline.topic].partitions) == len(PRODUCTS)
        assert len(topics[pipeline.dlq_topic].partitions) == len(PRODUCTS)
        env = pipeline.env(LOG_LEVEL="DEBUG")
        assert env["KAFKA_TOPIC"] == pipeline.topic and env["LOG_LEVEL"] == "DEBUG"
        assert env["MYSQL_DATABASE"] == pipeline.database
        as_app = services.connect(APP_USER, APP_PASSWORD, pipeline.database)
        with as_app, as_app.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM `order`")
            assert cursor.fetchone() == (0,)
        assert (pipeline.row_count(), pipeline.duplicates(), pipeline.dead_letters()) == (0, 0, 0)
    topics = services.admin_client().list_topics(timeout=10).topics
    assert pipeline.topic not in topics and pipeline.dlq_topic not in topics
    with pytest.raises(pymysql.err.OperationalError):
        services.admin(pipeline.database).close()


def test_free_port_is_free() -> None:
    import socket

    port = free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
