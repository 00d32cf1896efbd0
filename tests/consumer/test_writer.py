"""PartitionWriter on its own: a fake sink, a fake Kafka consumer and dead-letter producer
(no broker, no database): batching, retries with the partition paused, dead letters, and
offsets committed only after the sink stored the rows, at most about once a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumer import partition_client
from consumer.failures import is_transient
from consumer.settings import ConsumerSettings
from consumer.sink import Row, WriteResult
from consumer.sink.errors import SinkRejected, SinkUnavailable
from consumer.writer import PartitionWriter
from shared import supervision
from shared.dead_letters import DeadLetterPublisher
from shared.failures import Fatal
from shared.supervision import TopicState
from tests.factories import ticker

TOPIC = "unit.ticker"
PRODUCT, PARTITION = "BTC-USD", 1


class FakeMessage:
    def __init__(self, offset: int, value: bytes) -> None:
        self._offset, self._value = offset, value

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return [("received_ns", str(time.time_ns()).encode())]

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None

    def key(self) -> bytes:
        return PRODUCT.encode()

    def topic(self) -> str:
        return TOPIC


class FakeErrorEvent:
    """An error event as librdkafka hands it out among the records."""

    def __init__(self, error: KafkaError) -> None:
        self._error = error

    def error(self) -> KafkaError:
        return self._error


class FakeSink:
    """Stores rows by key; fails with the queued errors first."""

    def __init__(self, failures: list[BaseException] | None = None) -> None:
        self.failures = failures or []
        self.keys: set[tuple[object, object]] = set()
        self.stored_up_to = 0  # next offset after the last stored row
        self.batches: list[int] = []
        self.closed = False

    def write(self, rows: list[Row]) -> WriteResult:
        if self.failures:
            raise self.failures.pop(0)
        before = len(self.keys)
        self.keys.update((row["product_id"], row["sequence"]) for row in rows)
        self.stored_up_to = int(str(rows[-1]["kafka_offset"])) + 1
        self.batches.append(len(rows))
        inserted = len(self.keys) - before
        return WriteResult(inserted, len(rows) - inserted)

    def close(self) -> None:
        self.closed = True


class FakeConsumer:
    """One partition of records; remembers commits (with what the sink held then) and pauses."""

    def __init__(
        self,
        records: list[bytes],
        sink: FakeSink,
        on_commit: Callable[..., None],
        answers_commits: bool = True,
        reaches_broker: bool = True,
        group: dict[str, Any] | None = None,
    ) -> None:
        self.records, self.sink, self.on_commit = records, sink, on_commit
        self.answers_commits = answers_commits  # False: librdkafka stuck on its coordinator
        self.reaches_broker = reaches_broker  # False: librdkafka lost every broker
        self.group = {} if group is None else group  # the broker's side: "offset", "close_after"
        self.held: list[int] = []  # commits a stuck consumer never sent
        self.position = 0
        self.paused = False
        self.events: list[str] = []
        self.commits: list[tuple[int, int, bool]] = []  # (offset, sink stored up to, async)
        self.error_event: KafkaError | None = None

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, PARTITION, -1001)]

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.position = max(0, partitions[0].offset)

    def poll(self, timeout: float) -> FakeMessage | None:
        batch = self.consume(1, timeout)
        return batch[0] if batch else None

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        if self.error_event is not None:
            return [FakeErrorEvent(self.error_event)]
        if self.paused or self.position >= len(self.records) or not self.reaches_broker:
            time.sleep(min(timeout, 0.01))
            return []
        end = min(len(self.records), self.position + num_messages)
        out = [FakeMessage(o, self.records[o]) for o in range(self.position, end)]
        self.position = end
        return out

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        self.commits.append((offsets[0].offset, self.sink.stored_up_to, asynchronous))
        if asynchronous and self.group.pop("fail_then_apply_late", False):
            # Reported failed, yet librdkafka's own retry lands it after newer commits.
            late = offsets[0].offset

            def land_after_the_end() -> None:
                wait_until(lambda: self.group.get("offset") == len(self.records))
                self.group.update(offset=late, late=late)

            threading.Thread(target=land_after_the_end, daemon=True).start()
            self.on_commit(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS), offsets)
            return offsets
        if not self.answers_commits:
            self.held.append(offsets[0].offset)
            return offsets
        self.group["offset"] = offsets[0].offset
        if asynchronous:
            self.on_commit(None, offsets)  # librdkafka serves it in a later poll
        return offsets

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused = True
        self.events.append("pause")

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused = False
        self.events.append("resume")

    def get_watermark_offsets(
        self, partition: TopicPartition, cached: bool, timeout: float | None = None
    ) -> tuple[int, int]:
        if not cached and not self.reaches_broker:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "no usable brokers"))
        return 0, len(self.records)

    def close(self) -> None:
        """A stuck consumer's close may wait for the broker, send what it held, and go on
        closing a while."""
        close_after = self.group.get("close_after")
        if self.held and close_after is not None:
            wait_until(close_after)
            self.group["offset"] = self.held[-1]
            self.group["stale_sent"] = True
            wait_until(lambda: self.group["offset"] != self.held[-1], timeout_s=3)
            self.group["offset_when_closed"] = self.group["offset"]
        self.events.append("close")


def wait_until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, **record: Any) -> None:
        self.sent.append(record)

    def flush(self, timeout: float) -> int:
        return 0


class Rig:
    def __init__(self, records: list[bytes], sink: FakeSink, **settings: Any) -> None:
        self.records, self.sink = records, sink
        self.stop = threading.Event()
        self.producer = FakeProducer()
        self.consumer: FakeConsumer | None = None
        self.consumers: list[FakeConsumer] = []
        self.stuck_consumers = 0  # how many consumers, first made first, never answer commits
        self.wedged_consumers = 0  # how many consumers, first made first, reach no broker
        self.group: dict[str, Any] = {}  # the group's committed offset, as the broker holds it
        self.topic_state = TopicState.READY  # what a fresh client finds
        self.consume_error: KafkaError | None = None  # every consume answers this event
        values = {"kafka_topic": TOPIC, "products": ("ETH-BTC", PRODUCT), **settings}
        self.writer = PartitionWriter(
            ConsumerSettings(**values),
            PRODUCT,
            PARTITION,
            self.stop,
            sink=sink,
            make_consumer=self.make_consumer,
            dead_letters=lambda: DeadLetterPublisher(self.producer, "dlq", stage="consumer"),  # type: ignore[arg-type]
            probe=lambda: self.topic_state,
        )

    def make_consumer(self, group: str, on_commit: Callable[..., None]) -> FakeConsumer:
        answers = len(self.consumers) >= self.stuck_consumers
        reaches = len(self.consumers) >= self.wedged_consumers
        self.consumer = FakeConsumer(
            self.records, self.sink, on_commit, answers, reaches, self.group
        )
        self.consumer.error_event = self.consume_error
        self.consumers.append(self.consumer)
        return self.consumer

    def run_until(self, done: Callable[[], bool], timeout_s: float = 10) -> None:
        self.writer.start()
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline and self.writer.is_alive():
            time.sleep(0.01)
        self.stop.set()
        self.writer.join(10)
        assert not self.writer.is_alive()


def frames(count: int, first: int = 1) -> list[bytes]:
    return [ticker(PRODUCT, first + n) for n in range(count)]


def test_batches_close_on_size_and_every_row_is_written_once() -> None:
    rig = Rig(frames(12), FakeSink(), batch_max_rows=5, batch_max_wait_ms=1)
    rig.run_until(lambda: len(rig.sink.keys) == 12)
    assert rig.sink.batches == [5, 5, 2]
    assert rig.writer.counts.written == 12 and rig.writer.error is None
    assert rig.sink.closed


def test_offsets_are_committed_only_after_the_sink_stored_the_rows() -> None:
    rig = Rig(frames(40), FakeSink(), batch_max_rows=3, batch_max_wait_ms=1)
    rig.run_until(lambda: len(rig.sink.keys) == 40)
    assert rig.consumer is not None
    commits = rig.consumer.commits
    assert commits, "nothing committed"
    assert all(offset <= stored for offset, stored, _async in commits), commits
    assert commits[-1][0] == 40  # the clean stop commits what was stored


def test_offsets_are_committed_about_once_a_second() -> None:
    sink = FakeSink()
    rig = Rig(frames(600), sink, batch_max_rows=2, batch_max_wait_ms=1)
    started = time.monotonic()
    rig.run_until(lambda: len(sink.keys) == 600)
    took = time.monotonic() - started
    assert rig.consumer is not None
    commits = rig.consumer.commits
    assert len(sink.batches) == 300
    assert 1 <= len(commits) <= took / 1.0 + 2, (len(commits), took)  # + the one at shutdown
    assert all(asynchronous for _offset, _stored, asynchronous in commits[:-1])
    assert commits[-1] == (600, 600, False)  # at shutdown: synchronous


@pytest.fixture
def fast_supervision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stall and probe periods of a fraction of a second instead of seconds."""
    monkeypatch.setattr(supervision, "STALL_S", 0.3)
    monkeypatch.setattr(supervision, "PROBE_AFTER_S", 0.05)
    monkeypatch.setattr(supervision, "MISSING_GRACE_S", 0.2)
    monkeypatch.setattr(partition_client, "QUIET_CHECK_S", 0.1)


@pytest.mark.usefixtures("fast_supervision")
def test_unanswered_commits_replace_the_kafka_consumer_and_writing_goes_on() -> None:
    sink = FakeSink()
    records = frames(300)
    rig = Rig(records, sink, batch_max_rows=5, batch_max_wait_ms=1)
    rig.stuck_consumers = 1
    rig.run_until(lambda: len(rig.consumers) > 1 and len(sink.keys) == 300)
    first, second = rig.consumers[:2]
    assert first.commits and "close" in first.events  # the stuck one was sent a commit, closed
    assert len(sink.keys) == 300 and sum(sink.batches) == 300  # nothing lost, nothing again
    assert second.commits[-1][:2] == (300, 300)  # the new consumer commits to the end


@pytest.mark.usefixtures("fast_supervision")
def test_a_commit_the_replaced_consumer_held_cannot_leave_the_group_offset_behind() -> None:
    """The old consumer's close sends its held commit after the new one committed the end,
    and goes on closing: the writer commits the end again meanwhile."""
    sink = FakeSink()
    rig = Rig(frames(300), sink, batch_max_rows=5, batch_max_wait_ms=1)
    rig.stuck_consumers = 1
    rig.group["close_after"] = lambda: rig.group.get("offset") == 300
    rig.run_until(lambda: "offset_when_closed" in rig.group)
    assert rig.group.get("stale_sent") and rig.consumers[0].held[-1] < 300
    assert rig.group["offset_when_closed"] == 300  # committed again, the old one still closing
    assert rig.group["offset"] == 300


def test_a_commit_reported_failed_that_lands_late_cannot_leave_the_group_offset_behind() -> None:
    sink = FakeSink()
    rig = Rig(frames(300), sink, batch_max_rows=5, batch_max_wait_ms=1)
    rig.group["fail_then_apply_late"] = True
    rig.run_until(lambda: "late" in rig.group and rig.group["offset"] == 300)
    assert rig.group["late"] < 300  # the stale commit did land after newer ones
    assert rig.group["offset"] == 300


@pytest.mark.usefixtures("fast_supervision")
def test_a_quiet_consumer_that_lost_its_brokers_is_replaced_and_writing_goes_on() -> None:
    """Nothing to commit, so no unanswered commit gives it away: the quiet check must."""
    sink = FakeSink()
    rig = Rig(frames(50), sink, batch_max_rows=10, batch_max_wait_ms=1)
    rig.wedged_consumers = 1
    rig.run_until(lambda: len(sink.keys) == 50)
    wedged, working = rig.consumers
    assert not wedged.reaches_broker and not wedged.commits
    assert working.commits[-1][:2] == (50, 50)  # the new one wrote everything, committed it
    assert sum(sink.batches) == 50  # once each


@pytest.mark.usefixtures("fast_supervision")
def test_a_quiet_consumer_is_kept_while_the_cluster_itself_is_away() -> None:
    """A real outage: a new client would do no better, so the writer keeps its own."""
    rig = Rig(frames(5), FakeSink(), batch_max_wait_ms=1)
    rig.wedged_consumers = 99
    rig.topic_state = TopicState.UNREACHABLE
    rig.run_until(lambda: False, timeout_s=1)
    assert len(rig.consumers) == 1 and not rig.sink.keys
    assert rig.writer.error is None


@pytest.mark.usefixtures("fast_supervision")
def test_a_topic_that_stays_missing_fails_the_writer_with_one_line() -> None:
    """The cluster answers without the topic past the grace: not a wedged client to replace,
    a failure to report (exit 1), with what MySQL holds committed on the way out."""
    rig = Rig(frames(5), FakeSink(), batch_max_wait_ms=1)
    rig.wedged_consumers = 99
    rig.topic_state = TopicState.MISSING
    rig.run_until(lambda: rig.writer.error is not None, timeout_s=5)
    assert isinstance(rig.writer.error, supervision.TopicGone)
    assert TOPIC in str(rig.writer.error) and "gone" in str(rig.writer.error)
    assert len(rig.consumers) == 1  # not replaced


def test_a_permanent_consume_error_fails_the_writer() -> None:
    denied = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "denied")
    rig = Rig(frames(5), FakeSink(), batch_max_wait_ms=1)
    rig.consume_error = denied
    rig.run_until(lambda: rig.writer.error is not None, timeout_s=5)
    assert isinstance(rig.writer.error, Fatal)
    assert "TOPIC_AUTHORIZATION_FAILED" in str(rig.writer.error)


def test_a_kafka_client_that_cannot_be_built_fails_the_writer_not_quietly() -> None:
    rig = Rig(frames(5), FakeSink(), batch_max_wait_ms=1)

    def cannot(group: str, on_commit: Callable[..., None]) -> FakeConsumer:
        raise KafkaException(KafkaError(KafkaError._INVALID_ARG, "bad config"))

    rig.writer._make_consumer = cannot
    rig.writer.start()
    rig.writer.join(10)
    assert isinstance(rig.writer.error, Fatal) and "bad config" in str(rig.writer.error)
    assert rig.sink.closed


def test_an_idle_writer_commits_its_last_batch_within_about_a_second() -> None:
    rig = Rig(frames(3), FakeSink(), batch_max_wait_ms=1)
    rig.writer.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if rig.consumer and any(c[0] == 3 for c in rig.consumer.commits):
                break
            time.sleep(0.05)
        assert rig.consumer is not None and rig.consumer.commits[-1][:2] == (3, 3)
    finally:
        rig.stop.set()
        rig.writer.join(10)


def test_a_transient_sink_failure_pauses_the_partition_and_retries() -> None:
    sink = FakeSink([SinkUnavailable("gone away"), SinkUnavailable("still away")])
    rig = Rig(frames(10), sink, batch_max_wait_ms=1)
    rig.run_until(lambda: len(sink.keys) == 10)
    assert rig.consumer is not None
    assert rig.consumer.events[:2] == ["pause", "resume"]
    assert rig.writer.counts.written == 10 and rig.writer.error is None
    assert rig.writer.status.state == "stopped"


def test_a_permanent_sink_failure_kills_the_writer_without_committing_past_the_rows() -> None:
    sink = FakeSink([SinkRejected("1142 INSERT command denied")])
    rig = Rig(frames(10), sink, batch_max_wait_ms=1)
    rig.writer.start()
    rig.writer.join(10)
    assert isinstance(rig.writer.error, Fatal)  # a thread that ends quietly: no traceback
    assert "1142 INSERT command denied" in str(rig.writer.error)
    assert "ticker_writer" in str(rig.writer.error)  # the account it writes as
    assert rig.consumer is not None and rig.consumer.commits == []
    assert sink.keys == set()


def test_bad_records_become_dead_letters_and_are_committed_past() -> None:
    records = [*frames(3), b"{not json", ticker(PRODUCT, 9, price="NaN"), *frames(2, first=10)]
    rig = Rig(records, FakeSink(), batch_max_wait_ms=1)
    rig.run_until(lambda: len(rig.sink.keys) == 5 and rig.writer.counts.dead_letters == 2)
    reasons = [dict(record["headers"])["reason"] for record in rig.producer.sent]
    assert [record["value"] for record in rig.producer.sent] == records[3:5]
    assert all(reasons), reasons
    assert rig.consumer is not None and rig.consumer.commits[-1][0] == len(records)


def test_a_backfill_stops_at_its_end_offset_and_commits_nothing() -> None:
    sink = FakeSink()
    rig = Rig(frames(20), sink, batch_max_rows=4, batch_max_wait_ms=1)
    rig.writer.start_offset, rig.writer.end_offset = 2, 15
    rig.writer.start()
    rig.writer.join(10)
    assert not rig.writer.is_alive() and rig.writer.error is None
    assert len(sink.keys) == 13 and sink.stored_up_to == 15
    assert rig.consumer is not None and rig.consumer.commits == []


@pytest.mark.parametrize("failure", [SinkUnavailable("x"), SinkRejected("y")])
def test_sink_errors_say_whether_to_retry(failure: Exception) -> None:
    assert is_transient(failure) == isinstance(failure, SinkUnavailable)
