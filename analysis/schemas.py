"""Response shapes (Coinbase Exchange's where one exists), as shown at /docs."""

from __future__ import annotations

from pydantic import BaseModel, Field

DecimalText = str  # exact decimal digits as stored, trailing zeros of the scale trimmed


class Product(BaseModel):
    id: str = Field(examples=["BTC-USD"])
    first_time: str = Field(examples=["2026-11-29T10:00:00.123456Z"])
    last_time: str
    ticks: int = Field(
        description="rows stored for the product (refreshed every ANALYSIS_COUNT_CACHE_S seconds)"
    )


class Ticker(BaseModel):
    trade_id: int
    price: DecimalText = Field(examples=["84000.12"])
    size: DecimalText = Field(description="last_size of the latest tick")
    time: str
    bid: DecimalText
    ask: DecimalText
    volume: DecimalText = Field(description="volume_24h as Coinbase reported it")
    sequence: int


class Stats(BaseModel):
    open: DecimalText | None
    high: DecimalText | None
    low: DecimalText | None
    last: DecimalText | None
    volume: DecimalText = Field(description="sum of last_size: undercounts batched matches")


class Trade(BaseModel):
    product_id: str
    sequence: int
    trade_id: int
    time: str
    price: DecimalText
    size: DecimalText
    side: str
    notional: DecimalText = Field(description="price x size, exact")


class Gap(BaseModel):
    start: str
    end: str
    seconds: float


class Message(BaseModel):
    message: str = Field(examples=["granularity must be one of 60, 300, 900, 3600, 21600, 86400"])


class TapeTrade(BaseModel):
    """One trade of the tape, as Coinbase's GET /products/{id}/trades answers it."""

    time: str = Field(examples=["2026-11-29T10:00:00.123456Z"])
    trade_id: int
    price: DecimalText = Field(examples=["84000.12"])
    size: DecimalText
    side: str = Field(description="the maker's side, as Coinbase reports it")


class Completeness(BaseModel):
    first_trade_id: int | None = Field(description="first id of the range the window spans")
    last_trade_id: int | None = Field(description="last id of that range")
    missing: int = Field(description="ids of [first_trade_id, last_trade_id] not stored")
    holes: list[tuple[int, int]] = Field(
        description="[first missing, last missing] per hole, oldest first, at most `limit`; "
        "when their sizes add up to less than `missing`, more holes follow"
    )
    repaired: int = Field(description="stored trades of the range fetched from REST")
