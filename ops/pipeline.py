"""A throwaway pipeline on the real services: private topics, a private copy of `order`,
the app user's grants, and the environment that points a producer or consumer at them.

One helper for tests (the `pipeline` fixture wraps it), drills and benchmarks:

    with throwaway_pipeline("drill") as pipeline:
        consumer = pipeline.start("consumer", env={"LOG_LEVEL": "WARNING"}, logs=log)
        ...pipeline.keys(), pipeline.dead_letters()...
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import IO, Any

import pymysql
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from ops import kafka_broker, mysql_server, processes
from ops import services as ops_services
from shared.kafka_clients import HEADER_RECEIVED_NS, HEADER_SOURCE, reliable_producer
from shared.settings import CommonSettings

ROOT = processes.ROOT
# The products the pipeline subscribes to unless told otherwise: the settings' default.
PRODUCTS: tuple[str, ...] = CommonSettings.model_fields["products"].default
APP_USER, APP_PASSWORD = "ticker_writer", "ticker_writer"
Send = Callable[[int, int, bytes], None]  # send(partition, received ns, frame)


def free_port() -> int:
    """A TCP port nobody listens on right now (for a metrics server or a simulator)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def python_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment for a service subprocess: this interpreter's, plus `extra`."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


@dataclass(frozen=True)
class Services:
    """Where the real broker and database answer, and how to reach them as admin."""

    bootstrap: str
    mysql_host: str
    mysql_port: int
    admin_user: str
    admin_password: str
    local: bool  # started by ops/services.py here, so drills may stop and start them

    @classmethod
    def from_environment(cls) -> Services:
        return cls(
            bootstrap=kafka_broker.BOOTSTRAP,
            mysql_host=mysql_server.HOST,
            mysql_port=mysql_server.PORT,
            admin_user=mysql_server.ADMIN_USER,
            admin_password=mysql_server.ADMIN_PASSWORD,
            local=ops_services.local_services_started(),
        )

    def connect(
        self, user: str, password: str, database: str | None = None, **options: Any
    ) -> Connection[Cursor]:
        """A connection to the MariaDB/MySQL as `user` (pymysql `options` passed on)."""
        return pymysql.connect(
            host=self.mysql_host,
            port=self.mysql_port,
            user=user,
            password=password,
            database=database,
            **options,
        )

    def admin(self, database: str | None = None, **options: Any) -> Connection[Cursor]:
        """An admin connection (autocommit unless `options` say otherwise)."""
        return self.connect(
            self.admin_user, self.admin_password, database, **{"autocommit": True, **options}
        )

    def admin_client(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def control(self, command: str, service: str) -> None:
        """Stop or start a local service (drills: broker down, database restarting)."""
        if not self.local:
            raise RuntimeError("services were not started by ops/services.py; cannot stop them")
        subprocess.run(
            [sys.executable, "ops/services.py", command, service],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )


def create_topic(services: Services, name: str, partitions: int) -> None:
    """Create the topic and wait until the broker's metadata shows all its partitions
    (under load it trails the controller, and a service starting then would not see them)."""
    admin = services.admin_client()  # must outlive the future
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        topic = admin.list_topics(name, timeout=10).topics.get(name)
        if topic is not None and topic.error is None and len(topic.partitions) == partitions:
            return
        time.sleep(0.1)
    raise TimeoutError(f"topic {name} has not shown {partitions} partitions in 30 s")


def create_database(services: Services, name: str) -> None:
    """Private copies of `order` and `trade` that the app user may insert into and read."""
    with services.admin() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
        for table in ("order", "trade"):
            cursor.execute(f"CREATE TABLE `{name}`.`{table}` LIKE coinbase.`{table}`")
            cursor.execute(f"GRANT SELECT, INSERT ON `{name}`.`{table}` TO '{APP_USER}'@'%'")


@dataclass
class Pipeline:
    """One run's private topics and database, and the environment that points services at them."""

    services: Services
    products: tuple[str, ...]
    topic: str
    dlq_topic: str
    database: str
    group_id: str
    trades_topic: str = ""  # the trade tape is off unless a run asks for it (with_trade_tape)

    @classmethod
    def create(
        cls,
        prefix: str = "test",
        products: tuple[str, ...] = PRODUCTS,
        services: Services | None = None,
    ) -> Pipeline:
        """Fresh topics (one partition per product), a fresh database and consumer group."""
        services = services or Services.from_environment()
        suffix = uuid.uuid4().hex[:10]
        found = cls(
            services=services,
            products=tuple(products),
            topic=f"{prefix}.ticker.{suffix}",
            dlq_topic=f"{prefix}.ticker.dlq.{suffix}",
            database=f"{prefix}_{suffix}",
            group_id=f"{prefix}-writer-{suffix}",
        )
        create_topic(services, found.topic, len(products))
        create_topic(services, found.dlq_topic, len(products))
        create_database(services, found.database)
        return found

    def with_trade_tape(self) -> Pipeline:
        """This pipeline with a private trades topic (one partition per product) as well."""
        topic = self.topic.replace(".ticker.", ".matches.", 1)
        create_topic(self.services, topic, len(self.products))
        return replace(self, trades_topic=topic)

    def drop(self) -> None:
        with self.services.admin() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
        admin = self.services.admin_client()
        topics = [self.topic, self.dlq_topic] + ([self.trades_topic] if self.trades_topic else [])
        for deleted in admin.delete_topics(topics).values():
            try:
                deleted.result(timeout=30)
            except KafkaException as exc:  # a test deleted it already
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise

    def env(self, **overrides: str) -> dict[str, str]:
        """The settings of a producer or consumer working on this pipeline."""
        values = {
            "PRODUCTS": ",".join(self.products),
            "KAFKA_BOOTSTRAP_SERVERS": self.services.bootstrap,
            "KAFKA_TOPIC": self.topic,
            "KAFKA_DLQ_TOPIC": self.dlq_topic,
            "KAFKA_TRADES_TOPIC": self.trades_topic,
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

    def start(
        self,
        module: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        logs: IO[bytes] | None = None,
    ) -> subprocess.Popen[bytes]:
        """`python -m <module> <args>` (producer, consumer) against this pipeline, with `env`
        on top of its settings; output to `logs` (default: stdout dropped, stderr inherited)."""
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=python_env(self.env(**(env or {}))),
            stdout=logs if logs is not None else subprocess.DEVNULL,
            stderr=logs,
        )

    @contextmanager
    def producing(
        self, topic: str | None = None, source: str = "test", **config: Any
    ) -> Iterator[Send]:
        """`send(partition, received ns, frame)` into `topic` (default: the ticker topic), keyed
        and with headers as the producer sends them, by an idempotent producer (`config` on
        top): offsets follow the send order. Every frame is acknowledged at the end."""
        settings = CommonSettings(kafka_bootstrap_servers=self.services.bootstrap)
        producer = reliable_producer(settings, **{"queue.buffering.max.messages": 10**6} | config)

        def send(partition: int, received_ns: int, frame: bytes) -> None:
            headers: dict[str, str | bytes | None] = {HEADER_RECEIVED_NS: str(received_ns)}
            headers[HEADER_SOURCE] = source
            key = self.products[partition]
            while True:
                try:
                    producer.produce(topic or self.topic, frame, key, partition, headers=headers)
                    return
                except BufferError:  # the queue is full: serve delivery reports
                    producer.poll(0.05)

        yield send
        assert producer.flush(120) == 0, "frames left unacknowledged"

    def rows(self, query: str, *args: object) -> list[tuple[Any, ...]]:
        with self.services.admin(self.database) as connection, connection.cursor() as cursor:
            cursor.execute(query, args)
            return list(cursor.fetchall())

    def row_count(self) -> int:
        return int(self.rows("SELECT COUNT(*) FROM `order`")[0][0])

    def keys(self) -> set[tuple[str, int]]:
        """(product, sequence) of every row."""
        return {(str(p), int(s)) for p, s in self.rows("SELECT product_id, sequence FROM `order`")}

    def duplicates(self) -> int:
        query = "SELECT COUNT(*) - COUNT(DISTINCT product_id, sequence) FROM `order`"
        return int(self.rows(query)[0][0])

    def dead_letters(self) -> int:
        """Records in the dead-letter topic."""
        return sum(self.end_offsets(self.dlq_topic))

    def end_offsets(self, topic: str | None = None) -> list[int]:
        """The end offset of each partition of `topic` (default: the ticker topic)."""
        topic = topic or self.topic
        consumer = Consumer({"bootstrap.servers": self.services.bootstrap, "group.id": "reader"})
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            return [
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in sorted(partitions)
            ]
        finally:
            consumer.close()

    def committed_offsets(self, topic: str | None = None) -> list[int]:
        """The consumer group's committed offset of each partition of `topic` (default: the
        ticker topic; negative: none)."""
        consumer = Consumer(
            {"bootstrap.servers": self.services.bootstrap, "group.id": self.group_id}
        )
        try:
            topic = topic or self.topic
            wanted = [TopicPartition(topic, p) for p in range(len(self.products))]
            return [tp.offset for tp in consumer.committed(wanted, timeout=10)]
        finally:
            consumer.close()


@contextmanager
def throwaway_pipeline(
    prefix: str = "test", products: tuple[str, ...] = PRODUCTS, services: Services | None = None
) -> Iterator[Pipeline]:
    """A Pipeline for the duration of the block; dropped afterwards, whatever happened."""
    pipeline = Pipeline.create(prefix, products, services)
    try:
        yield pipeline
    finally:
        pipeline.drop()
