"""The consumer's Prometheus metrics, labelled by product and, for a writer's, by table.

`table` is `order` or `trade`: each is written by its own writer thread per product.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS_WRITTEN = Counter(
    "consumer_rows_written_total", "Rows inserted into the table", ["product", "table"]
)
DUPLICATES = Counter(
    "consumer_duplicates_total",
    "Records already in the table (replays, restarts)",
    ["product", "table"],
)
DEAD_LETTERS = Counter(
    "consumer_dead_letters_total", "Records sent to the dead-letter topic", ["product", "table"]
)
SNAPSHOTS = Counter(
    "consumer_snapshots_skipped_total", "Subscribe-time snapshot tickers (no trade)", ["product"]
)
RETRIES = Counter(
    "consumer_retries_total", "Transient failures retried", ["product", "table", "operation"]
)
BATCH_ROWS = Histogram(
    "consumer_batch_records",
    "Records per batch",
    ["product", "table"],
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000),
)
WRITE_SECONDS = Histogram(
    "consumer_write_seconds",
    "Time to write and commit one batch in MySQL",
    ["product", "table"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
END_TO_END_SECONDS = Histogram(
    "consumer_end_to_end_seconds",
    "Producer receive time to row committed",
    ["product", "table"],
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 5, 30),
)
WRITER_STALLED = Gauge(
    "consumer_writer_stalled",
    "1 while /healthz reports the writer failed, or without progress for HEALTH_STALL_S",
    ["product", "table"],
)
LAG = Gauge(
    "consumer_lag_records", "Records in the partition not yet written", ["product", "table"]
)
LAST_COMMIT = Gauge(
    "consumer_last_commit_timestamp_seconds",
    "When the last batch was committed",
    ["product", "table"],
)
OFFSET_COMMITS = Counter(
    "consumer_offset_commits_total",
    "Kafka offset commits sent (about one a second)",
    ["product", "table"],
)
PRODUCTS_OWNED = Gauge(
    "consumer_products_owned", "1 for each product this process writes", ["product"]
)
WRITE_PATH = Gauge("consumer_write_path", "1 for the MySQL write path in use", ["path"])


class ProductMetrics:
    """One writer's series (product, table), looked up once (a label lookup per batch adds up
    at live rates). Made at start-up for every writer, so /metrics names them before any row.
    """

    def __init__(self, product: str, table: str = "order") -> None:
        self.rows_written = ROWS_WRITTEN.labels(product=product, table=table)
        self.duplicates = DUPLICATES.labels(product=product, table=table)
        self.dead_letters = DEAD_LETTERS.labels(product=product, table=table)
        self.snapshots = SNAPSHOTS.labels(product=product)
        self.batch_rows = BATCH_ROWS.labels(product=product, table=table)
        self.write_seconds = WRITE_SECONDS.labels(product=product, table=table)
        self.end_to_end = END_TO_END_SECONDS.labels(product=product, table=table)
        self.lag = LAG.labels(product=product, table=table)
        self.last_commit = LAST_COMMIT.labels(product=product, table=table)
        self.offset_commits = OFFSET_COMMITS.labels(product=product, table=table)
        PRODUCTS_OWNED.labels(product=product).set(1)
