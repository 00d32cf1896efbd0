"""Frames far larger than a ticker: the Kafka client's size limit, and one log line per kind.

A ticker is about 450 bytes, but a valid one may carry a large extra field. The feed reads
messages up to `FEED_MAX_FRAME_BYTES` and publishes every ticker raw, whatever its size:
lz4 makes most large frames fit the topic's `max.message.bytes` (1 MiB by default, checked
on the compressed batch). A frame Kafka still refuses goes to the dead-letter topic,
truncated, with its reason and original length (shared/dead_letters.py). Each of these
events is counted in `producer_large_frames_total{event}` and logged at most once per kind
per interval, with the count since the previous line (RepeatedErrors): never a line per frame.
"""

from __future__ import annotations

from typing import TypeGuard

from confluent_kafka import KafkaError
from prometheus_client import REGISTRY

from producer import metrics
from shared.logs import RepeatedErrors, get_logger

log = get_logger(__name__)

# No feed message comes near this in normal operation: a frame above it is counted and logged.
LARGE_FRAME_BYTES = 64 * 1024
# librdkafka refuses a message above its own `message.max.bytes` (1 MB by default) before
# compressing it: the producer's limit is the feed's, plus room for the key and headers.
CLIENT_HEADROOM_BYTES = 64 * 1024
# The broker's answers for a record batch over the topic's limit (per record / per batch).
TOO_LARGE = (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE)


def client_max_bytes(feed_max_frame_bytes: int) -> int:
    """The Kafka producer's `message.max.bytes`: every frame the feed may hand on fits."""
    return feed_max_frame_bytes + CLIENT_HEADROOM_BYTES


def too_large(error: KafkaError | None) -> TypeGuard[KafkaError]:
    return error is not None and error.code() in TOO_LARGE


# Frames handled as they should be, but worth knowing about: a warning, one per interval.
RECEIVED = RepeatedErrors(log, "large frames received; handled like any other", 10.0, "warning")


def received(size: int) -> None:
    """A frame above LARGE_FRAME_BYTES came in: counted and (rarely) logged; handled as usual."""
    metrics.LARGE_FRAMES.labels(event="received").inc()
    RECEIVED.add("received", size=size)


def dead_lettered() -> int:
    """How many frames Kafka refused as too large went to the dead letters (for the summary)."""
    found = REGISTRY.get_sample_value("producer_large_frames_total", {"event": "dead_lettered"})
    return int(found or 0)
