"""Settings of `python -m repair`: Kafka and the products (where to publish), MySQL (where to
look for holes, as a SELECT-only account) and the REST side."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings, MySQLSettings, Port


class RepairSettings(MySQLSettings, CommonSettings):
    """Every variable repair reads; `python -m repair --help` lists them."""

    coinbase_rest_url: str = Field(
        "https://api.exchange.coinbase.com", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
    )
    # SELECT on `trade` is all repair needs (schema.sql grants it to ticker_reader).
    mysql_user: str = Field("ticker_reader", min_length=1)
    repair_metrics_port: Port = 9103
    # Coinbase allows about 10 public requests/s per IP: never more than that.
    repair_rest_rate: float = Field(10.0, gt=0, le=10)
    repair_rest_timeout_s: float = Field(10.0, gt=0, le=120)
    # A page that cannot be fetched for this long (429s, 5xx, bad bodies, no answer) ends a
    # one-shot run with exit 1; --follow logs it and tries again at the next poll.
    repair_rest_give_up_s: float = Field(60.0, gt=0)
    # --follow: how often the holes are looked for, and how old a hole must be before it is
    # repaired (the producer and consumer may still be writing it).
    repair_poll_s: float = Field(5.0, gt=0, le=300)
    repair_settle_s: float = Field(5.0, ge=0, le=300)
    # One-shot: how long to wait for the consumer to show the published trades in `trade`;
    # 0 = report what Kafka acknowledged and exit without looking.
    repair_wait_s: float = Field(60.0, ge=0)
    repair_delivery_timeout_s: float = Field(60.0, gt=0)
