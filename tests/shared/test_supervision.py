"""The one stall policy for every Kafka client (shared/supervision.py), on a fake clock."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from shared.supervision import (
    MISSING_GRACE_S,
    PROBE_AFTER_S,
    STALL_S,
    ClientWatch,
    TopicGone,
    TopicState,
    Verdict,
    kafka_failure,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch_of(states: list[TopicState]) -> tuple[ClientWatch, Clock, list[float]]:
    clock = Clock()
    probed: list[float] = []

    def probe() -> TopicState:
        probed.append(clock.now)
        return states[0] if len(states) == 1 else states.pop(0)

    return ClientWatch("ticks", "t", probe, clock=clock), clock, probed


def test_nothing_waiting_is_progress_and_never_probes() -> None:
    watch, clock, probed = watch_of([TopicState.READY])
    for _ in range(100):
        clock.now += 1
        assert watch.check(waiting=False) is Verdict.WAIT
    assert probed == [] and watch.stalled_for() == 0


def test_a_stalled_client_whose_topic_answers_is_replaced_after_stall_s_once() -> None:
    watch, clock, probed = watch_of([TopicState.READY])
    verdicts = []
    for _ in range(int(STALL_S) + 5):
        clock.now += 1
        verdicts.append(watch.check(waiting=True))
    assert verdicts.count(Verdict.REPLACE) == 1
    assert verdicts.index(Verdict.REPLACE) == int(STALL_S) - 1  # at STALL_S, not before
    assert probed[0] - 1000.0 >= PROBE_AFTER_S  # asked only once work waited that long
    assert watch.replacements == 1


def test_an_outage_is_waited_out_however_long() -> None:
    watch, clock, _probed = watch_of([TopicState.UNREACHABLE])
    for _ in range(10 * int(STALL_S)):
        clock.now += 1
        assert watch.check(waiting=True) is Verdict.WAIT


def test_after_an_outage_the_client_gets_a_whole_stall_to_reconnect() -> None:
    states = [TopicState.UNREACHABLE] * 30 + [TopicState.READY] * 100
    watch, clock, _probed = watch_of(states)
    verdicts = []
    for _ in range(30 + int(STALL_S) + 5):  # 30 s of outage, then the cluster answers
        clock.now += 1
        verdicts.append(watch.check(waiting=True))
    # Not at once when the cluster is back (the outage counted as the client's stall),
    # but once it has answered for STALL_S without the client making progress.
    assert Verdict.REPLACE not in verdicts[: 30 + int(STALL_S) - 1]
    assert Verdict.REPLACE in verdicts


def test_a_topic_missing_past_the_grace_is_gone_and_a_blip_is_not() -> None:
    watch, clock, _probed = watch_of([TopicState.MISSING, TopicState.READY])
    clock.now += PROBE_AFTER_S
    assert watch.check(waiting=True) is Verdict.WAIT  # missing once: being created?
    clock.now += PROBE_AFTER_S
    assert watch.check(waiting=True) is Verdict.WAIT  # it is back
    watch.progressed()
    gone, clock, _probed = watch_of([TopicState.MISSING])
    with pytest.raises(TopicGone, match=r"topic t \(or a partition of it\) is gone"):
        for _ in range(int((PROBE_AFTER_S + MISSING_GRACE_S) / 0.5) + 2):
            clock.now += 0.5
            gone.check(waiting=True)


def test_permanent_kafka_errors_are_fatal_and_transient_ones_are_not() -> None:
    assert kafka_failure(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), "producer")
    assert kafka_failure(KafkaError(KafkaError._TRANSPORT), "producer") is None
    assert kafka_failure(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART), "producer") is None
