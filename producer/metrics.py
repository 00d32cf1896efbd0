"""The producer's Prometheus metrics. Per-frame ones are tallies (cheap on the hot path)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from producer.tally import HistogramTally, Tally

FRAMES = Tally("producer_frames_received", "WebSocket frames received, by type", "type")
TICKS_IN = Tally("producer_ticks_received", "Ticks received (first arrival of each)", "product")
TICKS_ENQUEUED = Tally("producer_ticks_enqueued", "Ticker frames handed to Kafka", "product")
TICKS_OUT = Tally("producer_ticks_published", "Ticker frames acknowledged by Kafka", "product")
DELIVERY_FAILURES = Tally(
    "producer_delivery_failures", "Ticker frames Kafka did not acknowledge", "product"
)
DROPPED_BUFFER_FULL = Tally(
    "producer_dropped_buffer_full", "Ticker frames dropped: Kafka buffer full", "product"
)
TRADE_GAPS = Tally("producer_trade_id_gaps", "Tickers after skipped trade ids", "product")
MISSED_TRADES = Tally("producer_missed_trade_ids", "Trade ids skipped between tickers", "product")
TICKS_REPEATED = Tally(
    "producer_ticks_repeated", "Tickers skipped as exact repeats of a published one", "product"
)
# The trade tape (KAFKA_TRADES_TOPIC): every match, deduped by (product, trade_id).
TRADES_IN = Tally(
    "producer_trades_received", "Trades received (first arrival of each trade id)", "product"
)
TRADES_ENQUEUED = Tally("producer_trades_enqueued", "Match frames handed to Kafka", "product")
TRADES_OUT = Tally("producer_trades_published", "Match frames acknowledged by Kafka", "product")
TRADES_REPEATED = Tally(
    "producer_trades_repeated", "Match frames skipped: their trade id was published", "product"
)
TRADES_LATE = Tally(
    "producer_trades_late", "Trades published below the product's newest trade id", "product"
)
TRADE_HOLES = Tally(
    "producer_trade_holes",
    "Jumps in trade_id on the matches stream: holes in the tape that repair must fill",
    "product",
)
TRADE_IDS_MISSING = Tally(
    "producer_trade_ids_missing", "Trade ids skipped at those jumps", "product"
)
TRADES_DELIVERY_FAILURES = Tally(
    "producer_trades_delivery_failures", "Match frames Kafka did not acknowledge", "product"
)
TRADES_DROPPED_BUFFER_FULL = Tally(
    "producer_trades_dropped_buffer_full", "Match frames dropped: Kafka buffer full", "product"
)
SEQUENCE_ANOMALIES = Counter(
    "producer_sequence_anomalies_total",
    "Tickers published with a sequence out of order or far from the previous one",
    ["product", "kind"],
)
RECONNECT_GAPS = Counter(
    "producer_reconnect_gaps_total",
    "Windows with no live connection, in which ticks may be lost",
    ["product"],
)
LARGE_FRAMES = Counter(
    "producer_large_frames_total",
    "Frames over 64 KiB: received; resent (a tick refused with a larger frame in its batch); "
    "dead_lettered (refused by Kafka as too large, truncated); over_limit (over "
    "FEED_MAX_FRAME_BYTES: the connection closed)",
    ["event"],
)
DEAD_LETTERS = Counter("producer_dead_letters_total", "Frames the dead-letter topic acknowledged")
DEAD_LETTERS_FAILED = Counter(
    "producer_dead_letters_failed_total", "Dead letters Kafka refused or never acknowledged"
)
STALLED = Gauge(
    "producer_stalled",
    "1 while no tick was acknowledged for HEALTH_STALL_S although ticks wait, or on a failure",
)
RECONNECTS = Counter(
    "producer_reconnects_total", "Feed reconnects, by connection and cause", ["connection", "cause"]
)
CONNECTION_UP = Gauge(
    "producer_connection_up", "1 while the connection is subscribed", ["connection"]
)
CONNECTION_FRAMES = Tally(
    "producer_connection_frames", "WebSocket frames received, by connection", "connection"
)
CONNECTION_FIRST = Tally(
    "producer_connection_first_ticks",
    "Tickers this connection delivered first (published from it)",
    "connection",
)
BUFFERED = Gauge("producer_buffer_messages", "Frames waiting for Kafka acknowledgement")
BUFFER_FILL = Gauge("producer_buffer_fill_ratio", "Share of the bounded buffer in use")
DELIVERY_SECONDS = HistogramTally(
    "producer_delivery_seconds",
    "Frame received to Kafka acknowledgement",
    buckets=(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1, 5),
)
