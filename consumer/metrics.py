"""The consumer's Prometheus metrics, labelled by product."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS_WRITTEN = Counter("consumer_rows_written_total", "Rows inserted into `order`", ["product"])
DUPLICATES = Counter(
    "consumer_duplicates_total", "Ticks already in `order` (replays, restarts)", ["product"]
)
DEAD_LETTERS = Counter(
    "consumer_dead_letters_total", "Records sent to the dead-letter topic", ["product"]
)
SNAPSHOTS = Counter(
    "consumer_snapshots_skipped_total", "Subscribe-time snapshot tickers (no trade)", ["product"]
)
RETRIES = Counter("consumer_retries_total", "Transient failures retried", ["product", "operation"])
BATCH_ROWS = Histogram(
    "consumer_batch_records",
    "Records per batch",
    ["product"],
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000),
)
WRITE_SECONDS = Histogram(
    "consumer_write_seconds",
    "Time to write and commit one batch in MySQL",
    ["product"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
END_TO_END_SECONDS = Histogram(
    "consumer_end_to_end_seconds",
    "Producer receive time to row committed",
    ["product"],
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 5, 30),
)
WRITER_STALLED = Gauge(
    "consumer_writer_stalled",
    "1 while /healthz reports the writer failed, or without progress for HEALTH_STALL_S",
    ["product"],
)
LAG = Gauge("consumer_lag_records", "Records in the partition not yet written", ["product"])
LAST_COMMIT = Gauge(
    "consumer_last_commit_timestamp_seconds", "When the last batch was committed", ["product"]
)
OFFSET_COMMITS = Counter(
    "consumer_offset_commits_total", "Kafka offset commits sent (about one a second)", ["product"]
)
PRODUCTS_OWNED = Gauge(
    "consumer_products_owned", "1 for each product this process writes", ["product"]
)
WRITE_PATH = Gauge("consumer_write_path", "1 for the MySQL write path in use", ["path"])


class ProductMetrics:
    """One product's series, looked up once (a label lookup per batch adds up at live rates).

    Made at start-up for every owned product, so /metrics names them before any row.
    """

    def __init__(self, product: str) -> None:
        self.rows_written = ROWS_WRITTEN.labels(product=product)
        self.duplicates = DUPLICATES.labels(product=product)
        self.dead_letters = DEAD_LETTERS.labels(product=product)
        self.snapshots = SNAPSHOTS.labels(product=product)
        self.batch_rows = BATCH_ROWS.labels(product=product)
        self.write_seconds = WRITE_SECONDS.labels(product=product)
        self.end_to_end = END_TO_END_SECONDS.labels(product=product)
        self.lag = LAG.labels(product=product)
        self.last_commit = LAST_COMMIT.labels(product=product)
        self.offset_commits = OFFSET_COMMITS.labels(product=product)
        PRODUCTS_OWNED.labels(product=product).set(1)
