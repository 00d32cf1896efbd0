"""The real broker and database answer, and the schema/topic commands behave."""

from __future__ import annotations

import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from consumer.sink import COLUMN_NAMES
from ops import mysql_server
from shared.failures import EXIT_CODES_HELP
from shared.topics import TopicError, ensure_topic
from tests.conftest import (
    APP_PASSWORD,
    APP_USER,
    ROOT,
    Pipeline,
    Services,
    create_topic,
    python_env,
)
from tests.factories import fatal_line, service_stderr, start_service, stop_service, wait_for


def test_broker_is_real_kafka(services: Services) -> None:
    metadata = services.admin_client().list_topics(timeout=10)
    assert metadata.brokers, "no broker in metadata"
    assert metadata.cluster_id


def test_database_answers_queries(services: Services) -> None:
    with services.admin() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT VERSION(), @@sql_mode")
        version, sql_mode = cursor.fetchone()  # type: ignore[misc]
    assert version
    assert "STRICT_TRANS_TABLES" in sql_mode


def test_services_command_runs_as_a_script_from_any_folder(
    services: Services, tmp_path: Path
) -> None:
    """`python ops/services.py` imports its parts from the repository (ops/ holds an http.py
    that would shadow the standard library's), wherever it is started from."""
    env = {name: value for name, value in python_env({}).items() if name != "PYTHONPATH"}
    command = [sys.executable, str(ROOT / "ops" / "services.py")]
    shown = subprocess.run(
        [*command, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert shown.returncode == 0, shown.stderr
    assert "python ops/services.py up [--private] | down | status | schema" in shown.stdout
    status = subprocess.run(
        [*command, "status"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Kafka " in status.stdout and ": ready; MySQL " in status.stdout


def test_schema_applies_twice(services: Services) -> None:
    mysql_server.apply_schema()
    mysql_server.apply_schema()
    with services.admin("coinbase") as connection, connection.cursor() as cursor:
        cursor.execute("SHOW INDEX FROM `order` WHERE Non_unique = 0")
        unique_columns = [row[4] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = 'coinbase' AND TABLE_NAME = 'order'"
        )
        types = dict(cursor.fetchall())
    assert unique_columns == ["product_id", "sequence"]
    assert types["price"] == "decimal(38,18)"
    assert types["time"] == "datetime(6)"
    for name in COLUMN_NAMES:
        assert name in types


def test_app_user_may_only_insert_and_select(pipeline: Pipeline) -> None:
    connection = pipeline.services.connect(
        APP_USER, APP_PASSWORD, pipeline.database, autocommit=True
    )
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO `order` (product_id, sequence, trade_id, price, side, last_size, "
            "best_bid, best_ask, open_24h, volume_24h, low_24h, high_24h, volume_30d, time, "
            "kafka_partition, kafka_offset) VALUES ('BTC-USD', 1, 2, '84140.830000000000000001', "
            "'buy', '0.00004104', '1', '2', '3', '4', '5', '6', '7', "
            "'2026-09-29 13:45:58.116787', 1, 0)"
        )
        cursor.execute("SELECT price, time FROM `order`")
        price, when = cursor.fetchone()  # type: ignore[misc]
        assert price == Decimal("84140.830000000000000001")
        assert when.microsecond == 116787
        for statement in (
            "DELETE FROM `order`",
            "UPDATE `order` SET price = 0",
            "DROP TABLE `order`",
        ):
            with pytest.raises(pymysql.err.OperationalError, match="denied"):
                cursor.execute(statement)


def test_kafka_round_trip(pipeline: Pipeline) -> None:
    producer = Producer({"bootstrap.servers": pipeline.services.bootstrap})
    producer.produce(pipeline.topic, b"hello", key=b"BTC-USD", partition=1)
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": pipeline.services.bootstrap,
            "group.id": pipeline.group_id,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(pipeline.topic, 1, 0)])
    message = consumer.poll(15)
    consumer.close()
    assert message is not None and message.error() is None
    assert (message.key(), message.value(), message.partition()) == (b"BTC-USD", b"hello", 1)


def test_ensure_creates_one_partition_per_product_and_is_idempotent(services: Services) -> None:
    name = f"test.ensure.{uuid.uuid4().hex[:8]}"
    admin = services.admin_client()
    assert ensure_topic(admin, name, partitions=3, retention_ms=-1) is True
    assert ensure_topic(admin, name, partitions=3, retention_ms=-1) is False
    # The broker's metadata cache may trail the controller by a moment under load.
    wait_for(
        lambda: len(admin.list_topics(name, timeout=10).topics[name].partitions) == 3,
        10,
        "three partitions in the topic's metadata",
    )


def ensure_topics(**env: str) -> subprocess.CompletedProcess[str]:
    """`python -m shared.topics ensure` with `env` (JSON logs, as a service in a container)."""
    return subprocess.run(
        [sys.executable, "-m", "shared.topics", "ensure"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=python_env({"LOG_FORMAT": "json", **env}),
    )


def test_ensure_command_creates_both_topics_and_exits_0(services: Services) -> None:
    name = f"test.ensured.{uuid.uuid4().hex[:8]}"
    admin = services.admin_client()
    try:
        result = ensure_topics(
            KAFKA_BOOTSTRAP_SERVERS=services.bootstrap,
            KAFKA_TOPIC=name,
            KAFKA_DLQ_TOPIC=name + ".dlq",
        )
        assert result.returncode == 0, result.stderr
        assert {name, name + ".dlq"} <= set(admin.list_topics(timeout=10).topics)
    finally:
        for future in admin.delete_topics([name, name + ".dlq"]).values():
            future.result(timeout=30)


def test_ensure_refuses_topic_with_too_few_partitions(services: Services) -> None:
    name = f"test.narrow.{uuid.uuid4().hex[:8]}"
    create_topic(services, name, partitions=2)
    with pytest.raises(TopicError, match="has 2 partitions but 3"):
        ensure_topic(services.admin_client(), name, partitions=3, retention_ms=-1)
    result = ensure_topics(KAFKA_BOOTSTRAP_SERVERS=services.bootstrap, KAFKA_TOPIC=name)
    assert result.returncode == 2  # cannot start: the topic
    # One structured line for the log pipeline, then the plain line, last; no traceback.
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 2 and "Traceback" not in result.stderr
    assert lines[-1].startswith("refusing: ") and "has 2 partitions but 3 products" in lines[-1]


def test_bad_setting_stops_with_one_line_naming_it(services: Services) -> None:
    result = ensure_topics(PRODUCTS="BTC-USD,not a product")
    assert result.returncode == 2  # cannot start: a setting
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("invalid setting PRODUCTS:")


def test_ensure_help_shows_the_exit_code_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shared.topics", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert EXIT_CODES_HELP in result.stdout


def test_services_create_missing_topics_and_refuse_narrow_ones(pipeline: Pipeline) -> None:
    fresh = f"test.fresh.{uuid.uuid4().hex[:8]}"
    producer = start_service(
        "producer",
        pipeline,
        KAFKA_TOPIC=fresh,
        KAFKA_DLQ_TOPIC=fresh + ".dlq",
        COINBASE_WS_URL="ws://127.0.0.1:9",
    )
    try:
        admin = pipeline.services.admin_client()
        wait_for(lambda: fresh + ".dlq" in admin.list_topics(timeout=5).topics, 30, "topics")
        assert len(admin.list_topics(fresh, timeout=5).topics[fresh].partitions) == 3
    finally:
        stop_service(producer)

    narrow = f"test.narrow.{uuid.uuid4().hex[:8]}"
    create_topic(pipeline.services, narrow, partitions=2)
    consumer = start_service("consumer", pipeline, KAFKA_TOPIC=narrow)
    consumer.wait(timeout=60)
    assert consumer.returncode == 2
    assert "has 2 partitions but 3 products" in fatal_line(service_stderr(consumer), 2)
