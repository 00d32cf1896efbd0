"""Repair's Prometheus metrics (on REPAIR_METRICS_PORT with --follow)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

HOLES_OPEN = Gauge("repair_holes_open", "Holes in the trade tape at the last pass", ["product"])
MISSING = Gauge("repair_missing_trades", "Trade ids missing at the last pass", ["product"])
REPAIRED = Counter(
    "repair_trades_repaired_total",
    "Trades fetched from REST and acknowledged by Kafka",
    ["product"],
)
REQUESTS = Counter("repair_rest_requests_total", "REST requests sent")
THROTTLED = Counter("repair_rest_throttled_total", "REST requests answered 429")
REST_FAILURES = Counter(
    "repair_rest_failures_total",
    "REST requests retried: throttled, server_error, unreachable, not_json, invalid_json, "
    "wrong_types",
    ["kind"],
)
UNAVAILABLE = Counter(
    "repair_trades_unavailable_total", "Missing trades the exchange no longer serves", ["product"]
)
LAST_PASS = Gauge("repair_last_pass_timestamp_seconds", "When the last pass over the holes ended")
