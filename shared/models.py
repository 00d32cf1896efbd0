"""The ticker message model: what a valid trade ticker is, and how its fields are parsed.

Decimal fields stay the feed's strings (exact; MySQL parses them into DECIMAL without
rounding) but must fit DECIMAL(38,18): at most 20 integer and 18 fractional digits,
no sign, exponent, NaN or spaces. MariaDB would round extra digits with only a note,
so a value that doesn't fit is rejected here instead.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

INTEGER_DIGITS = 20
FRACTION_DIGITS = 18
MAX_BIGINT = 2**63 - 1
# The ticker's decimal-string fields, stored in DECIMAL(38,18) columns of the same names.
DECIMAL_FIELDS = (
    "price",
    "last_size",
    "best_bid",
    "best_bid_size",
    "best_ask",
    "best_ask_size",
    "open_24h",
    "volume_24h",
    "low_24h",
    "high_24h",
    "volume_30d",
)

DecimalString = Annotated[
    str,
    StringConstraints(pattern=rf"^[0-9]{{1,{INTEGER_DIGITS}}}(\.[0-9]{{1,{FRACTION_DIGITS}}})?$"),
]

FEED_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$"
_FEED_TIME = re.compile(FEED_TIME_PATTERN)


def _real_calendar_time(text: str) -> str:
    datetime.fromisoformat(text[:19])  # no February 30th, no hour 25
    return text


# Coinbase's UTC time in any of its precisions (µs, ns, 8 digits, ms with zeros dropped).
FeedTime = Annotated[
    str, StringConstraints(pattern=FEED_TIME_PATTERN), AfterValidator(_real_calendar_time)
]


def parse_feed_time(text: str) -> datetime:
    """A feed time as an aware UTC datetime, truncated to microseconds.

    `.9Z` means .900000; nanoseconds are cut, never rounded (rounding could move a
    trade into the next second). Only `Z` (UTC) is accepted.
    """
    if not _FEED_TIME.match(text):
        raise ValueError(f"time {text[:40]!r} is not UTC ISO-8601 like 2026-09-29T13:45:58.116787Z")
    return datetime.fromisoformat(mysql_datetime(text)).replace(tzinfo=UTC)


def mysql_datetime(feed_time: str) -> str:
    """A validated feed time as a DATETIME(6) literal: `2026-09-29 13:45:58.116787`.

    Cut after the sixth fraction digit here, because MySQL would round the seventh.
    """
    return feed_time[:10] + " " + feed_time[11:26].rstrip("Z")


class TradeTicker(BaseModel):
    """A `ticker` frame for a trade: the shape of one row of `order`."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    type: Literal["ticker"]
    product_id: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    sequence: Annotated[int, Field(ge=1, le=MAX_BIGINT)]
    trade_id: Annotated[int, Field(ge=0, le=MAX_BIGINT)]
    price: DecimalString
    side: Literal["buy", "sell"]
    last_size: DecimalString
    best_bid: DecimalString
    best_bid_size: DecimalString | None = None  # missing in older captures
    best_ask: DecimalString
    best_ask_size: DecimalString | None = None
    open_24h: DecimalString
    volume_24h: DecimalString
    low_24h: DecimalString
    high_24h: DecimalString
    volume_30d: DecimalString
    time: FeedTime


class SnapshotTicker(BaseModel):
    """The ticker Coinbase sends right after subscribing: market state, no trade.

    No `trade_id`, `side`, `time` or `last_size` (a frame with any of them is a trade
    ticker and must validate as one); `sequence` is sometimes missing too.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    type: Literal["ticker"]
    product_id: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    sequence: Annotated[int, Field(ge=1, le=MAX_BIGINT)] | None = None
    price: DecimalString
    best_bid: DecimalString
    best_ask: DecimalString
    trade_id: None = None
    side: None = None
    time: None = None
    last_size: None = None
