"""The producer's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES = Counter("producer_frames_received_total", "WebSocket frames received", ["type"])
TICKS_IN = Counter("producer_ticks_received_total", "Ticker frames received", ["product"])
TICKS_OUT = Counter(
    "producer_ticks_published_total", "Ticker frames acknowledged by Kafka", ["product"]
)
DELIVERY_FAILURES = Counter(
    "producer_delivery_failures_total", "Ticker frames Kafka did not acknowledge", ["product"]
)
DROPPED = Counter(
    "producer_dropped_total", "Ticker frames not published, by reason", ["product", "reason"]
)
GAPS = Counter("producer_gaps_total", "Detected gaps, by kind", ["product", "kind"])
MISSED_TRADES = Counter(
    "producer_missed_trade_ids_total", "Trade ids skipped between tickers", ["product"]
)
DEAD_LETTERS = Counter("producer_dead_letters_total", "Frames sent to the dead-letter topic")
RECONNECTS = Counter("producer_reconnects_total", "Feed reconnects, by cause", ["cause"])
BUFFERED = Gauge("producer_buffer_messages", "Frames waiting for Kafka acknowledgement")
BUFFER_FILL = Gauge("producer_buffer_fill_ratio", "Share of the bounded buffer in use")
DELIVERY_SECONDS = Histogram(
    "producer_delivery_seconds",
    "Frame received to Kafka acknowledgement",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5, 30),
)
LAST_FRAME = Gauge("producer_last_frame_timestamp_seconds", "When the last frame arrived")
