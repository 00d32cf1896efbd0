"""Fixtures: real Kafka and MariaDB (started by ops/services.py), per-test topics and databases."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from ops import services as ops_services

ROOT = Path(__file__).resolve().parent.parent
APP_USER, APP_PASSWORD = "ticker_writer", "ticker_writer"


@dataclass(frozen=True)
class Services:
    """Where the real broker and database answer, and how to reach them as admin."""

    bootstrap: str
    mysql_host: str
    mysql_port: int
    admin_user: str
    admin_password: str
    local: bool  # started by ops/services.py here, so tests may stop and start them

    def admin(self, database: str | None = None) -> Connection[Cursor]:
        return pymysql.connect(
            host=self.mysql_host,
            port=self.mysql_port,
            user=self.admin_user,
            password=self.admin_password,
            database=database,
            autocommit=True,
        )

    def admin_client(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def control(self, command: str, service: str) -> None:
        """Stop or start a local service (drills: broker down, database restarting)."""
        if not self.local:
            pytest.skip("services were not started by ops/services.py; cannot stop them")
        subprocess.run([sys.executable, "ops/services.py", command, service], check=True, cwd=ROOT)


@pytest.fixture(autouse=True)
def _no_stray_services() -> Iterator[None]:
    """A test that fails half-way must not leave a producer or consumer running."""
    yield
    from tests.factories import kill_leftovers  # factories imports this module

    kill_leftovers()


@pytest.fixture(scope="session")
def services() -> Services:
    subprocess.run([sys.executable, "ops/services.py", "up"], check=True, cwd=ROOT)
    return Services(
        bootstrap=ops_services.KAFKA_BOOTSTRAP,
        mysql_host=ops_services.MYSQL_HOST,
        mysql_port=ops_services.MYSQL_PORT,
        admin_user=ops_services.MYSQL_ADMIN_USER,
        admin_password=ops_services.MYSQL_ADMIN_PASSWORD,
        local=ops_services.local_services_started(),
    )


@dataclass
class Pipeline:
    """One test's private topics and database, and the environment that points services at them."""

    services: Services
    products: tuple[str, ...]
    topic: str
    dlq_topic: str
    database: str
    group_id: str

    def env(self, **overrides: str) -> dict[str, str]:
        values = {
            "PRODUCTS": ",".join(self.products),
            "KAFKA_BOOTSTRAP_SERVERS": self.services.bootstrap,
            "KAFKA_TOPIC": self.topic,
            "KAFKA_DLQ_TOPIC": self.dlq_topic,
            "KAFKA_GROUP_ID": self.group_id,
            "MYSQL_HOST": self.services.mysql_host,
            "MYSQL_PORT": str(self.services.mysql_port),
            "MYSQL_USER": APP_USER,
            "MYSQL_PASSWORD": APP_PASSWORD,
            "MYSQL_DATABASE": self.database,
            "LOG_FORMAT": "json",
            "PRODUCER_METRICS_PORT": "0",
            "CONSUMER_METRICS_PORT": "0",
        }
        return values | overrides

    def rows(self, query: str, *args: object) -> list[tuple[object, ...]]:
        with self.services.admin(self.database) as connection, connection.cursor() as cursor:
            cursor.execute(query, args)
            return list(cursor.fetchall())


def create_topic(services: Services, name: str, partitions: int) -> None:
    admin = services.admin_client()  # must outlive the future
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)


def create_database(services: Services, name: str) -> None:
    """A private copy of the `order` table that the app user may insert into and read."""
    with services.admin() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
        cursor.execute(f"CREATE TABLE `{name}`.`order` LIKE coinbase.`order`")
        cursor.execute(f"GRANT SELECT, INSERT ON `{name}`.`order` TO '{APP_USER}'@'%'")


@pytest.fixture
def pipeline(services: Services) -> Iterator[Pipeline]:
    """Fresh topics (one partition per product), a fresh database and group for one test."""
    suffix = uuid.uuid4().hex[:10]
    products = ("ETH-BTC", "BTC-USD", "BTC-EUR")
    found = Pipeline(
        services=services,
        products=products,
        topic=f"test.ticker.{suffix}",
        dlq_topic=f"test.ticker.dlq.{suffix}",
        database=f"test_{suffix}",
        group_id=f"test-writer-{suffix}",
    )
    create_topic(services, found.topic, len(products))
    create_topic(services, found.dlq_topic, len(products))
    create_database(services, found.database)
    yield found
    with services.admin() as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{found.database}`")
    admin = services.admin_client()
    for deleted in admin.delete_topics([found.topic, found.dlq_topic]).values():
        deleted.result(timeout=30)


def python_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a service subprocess: this interpreter's, plus `extra`."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}
