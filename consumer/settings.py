"""Settings of `python -m consumer` and its backfill command: the topic's, MySQL's and its own."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from shared.settings import CommonSettings, MySQLSettings, Port


class ConsumerSettings(MySQLSettings, CommonSettings):
    """Every variable the consumer reads; `python -m consumer --help` lists them."""

    kafka_group_id: str = Field("order-writer", min_length=1)
    # The products this process writes (default: all of PRODUCTS); partitions still
    # follow the order of PRODUCTS, so processes can split the products between them.
    consumer_products: Annotated[tuple[str, ...] | None, NoDecode] = None
    # LOAD DATA LOCAL INFILE per batch: when the server allows it (auto), always (on), never.
    mysql_bulk_load: Literal["auto", "on", "off"] = "auto"
    consumer_metrics_port: Port = 9102
    batch_max_rows: int = Field(2000, ge=1, le=100_000)  # bigger batches only cost memory
    batch_max_wait_ms: int = Field(20, ge=0, le=60_000)
    shutdown_timeout_s: float = Field(20.0, gt=0)
    # /healthz answers 503 once a writer has not advanced this long while records wait.
    health_stall_s: float = Field(30.0, gt=0)

    @field_validator("consumer_products", mode="before")
    @classmethod
    def _split_owned(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("consumer_products")
    @classmethod
    def _check_owned(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("empty; leave it unset to write every product of PRODUCTS")
        products = info.data.get("products", ())
        unknown = [product for product in value if product not in products]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not in PRODUCTS ({','.join(products)})")
        if len(set(value)) != len(value):
            raise ValueError("a product is listed twice")
        return value

    @property
    def owned_products(self) -> tuple[str, ...]:
        """The products this process writes, in PRODUCTS order."""
        owned = set(self.consumer_products or self.products)
        return tuple(product for product in self.products if product in owned)
