"""The topics the publisher writes (ticks, and trades when the tape is on), each one a
`Stream`: its frames' tallies, its own undelivered count, and its own progress watch.

One Kafka client carries both topics (producer/publisher.py), but each topic is watched on
its own: acknowledged ticks must not pass for progress while trades wait on a deleted trades
topic, nor the reverse. A stream that waits without progress makes its watch probe its own
topic, so a failure names the topic that is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from producer import metrics
from producer.tally import HistogramTally, Tally
from shared.logs import RepeatedErrors
from shared.supervision import ClientWatch, Probe


@dataclass(eq=False, slots=True)
class Stream:
    """One topic's frames on their way to Kafka."""

    name: str  # "ticks" or "trades": in log lines, the health reason and the closing line
    topic: str
    watch: ClientWatch
    errors: RepeatedErrors  # one line per kind per interval, never one per frame
    enqueued: Tally
    published: Tally
    failed: Tally
    dropped: Tally
    latency: HistogramTally | None = None
    undelivered: int = 0  # frames Kafka refused or never acknowledged
    refused: bool = False  # Kafka said the topic or a partition is unknown; no ack since
    handed: int = 0  # frames produce() took (the event loop's thread only)
    settled: int = 0  # of those, acknowledged or counted lost (the delivery thread only)

    def pending(self) -> int:
        """Frames handed to Kafka with no final delivery report yet."""
        return self.handed - self.settled


def tick_stream(topic: str, probe: Probe, stall_s: float | None, log: Any) -> Stream:
    return Stream(
        "ticks",
        topic,
        ClientWatch("ticks", topic, probe, stall_s=stall_s),
        RepeatedErrors(log, "Kafka did not take ticks"),
        metrics.TICKS_ENQUEUED,
        metrics.TICKS_OUT,
        metrics.DELIVERY_FAILURES,
        metrics.DROPPED_BUFFER_FULL,
        metrics.DELIVERY_SECONDS,
    )


def trade_stream(topic: str, probe: Probe, stall_s: float | None, log: Any) -> Stream:
    return Stream(
        "trades",
        topic,
        ClientWatch("trades", topic, probe, stall_s=stall_s),
        RepeatedErrors(log, "Kafka did not take trades"),
        metrics.TRADES_ENQUEUED,
        metrics.TRADES_OUT,
        metrics.TRADES_DELIVERY_FAILURES,
        metrics.TRADES_DROPPED_BUFFER_FULL,
    )
