"""The ticker message model: what a valid trade ticker is, and how its fields are parsed.

Decimal fields stay the feed's strings (exact; MySQL parses them into DECIMAL without
rounding) but must fit DECIMAL(38,18): at most 20 integer and 18 fractional digits,
no sign, exponent, NaN or spaces. MariaDB would round extra digits with only a note,
so a value that doesn't fit is rejected here instead.
"""

# No `from __future__ import annotations`: TypedDict must see `NotRequired` at run time.
import re
from datetime import UTC, datetime
from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

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

# A real Gregorian date and time of day (ASCII digits only), checked by pydantic-core's
# regex engine: a Python validator here cost as much as the rest of the row's validation.
_YEAR = r"([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_LEAP_YEAR = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|([2468][048]|[13579][26]|0[48])00)"
_DATE = (
    rf"({_YEAR}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    rf"|02-(0[1-9]|1[0-9]|2[0-8]))|{_LEAP_YEAR}-02-29)"
)
FEED_TIME_PATTERN = rf"^{_DATE}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{{1,9}})?Z$"
_FEED_TIME = re.compile(FEED_TIME_PATTERN)

# Coinbase's UTC time in any of its precisions (µs, ns, 8 digits, ms with zeros dropped).
FeedTime = Annotated[str, StringConstraints(pattern=FEED_TIME_PATTERN)]


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


@with_config(ConfigDict(strict=True, extra="ignore"))
class TradeTicker(TypedDict):
    """A `ticker` frame for a trade: the shape of one row of `order`.

    A dict, not a model: it becomes the row as it is, without an object per record.
    """

    type: Literal["ticker"]
    product_id: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    sequence: Annotated[int, Field(ge=1, le=MAX_BIGINT)]
    trade_id: Annotated[int, Field(ge=0, le=MAX_BIGINT)]
    price: DecimalString
    side: Literal["buy", "sell"]
    last_size: DecimalString
    best_bid: DecimalString
    best_bid_size: NotRequired[DecimalString | None]  # missing in older captures
    best_ask: DecimalString
    best_ask_size: NotRequired[DecimalString | None]
    open_24h: DecimalString
    volume_24h: DecimalString
    low_24h: DecimalString
    high_24h: DecimalString
    volume_30d: DecimalString
    time: FeedTime


TRADE_TICKER = TypeAdapter(TradeTicker)


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


# ---------------------------------------------------------------------- the trade tape

OrderId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]{1,64}$")]  # a UUID


@with_config(ConfigDict(strict=True, extra="ignore"))
class MatchFrame(TypedDict):
    """A `match` (or the subscribe-time `last_match`) frame: one row of `trade`.

    `side` is the maker's. Order ids are checked against a plain pattern because the
    writer formats rows without an escaper (consumer/sink/layout.py).
    """

    type: Literal["match", "last_match"]
    product_id: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    trade_id: Annotated[int, Field(ge=0, le=MAX_BIGINT)]
    sequence: Annotated[int, Field(ge=1, le=MAX_BIGINT)]
    maker_order_id: OrderId
    taker_order_id: OrderId
    side: Literal["buy", "sell"]
    size: DecimalString
    price: DecimalString
    time: FeedTime


@with_config(ConfigDict(strict=True, extra="ignore"))
class RestTrade(TypedDict):
    """A trade object of REST `/products/{id}/trades`, as the repair command publishes it.

    It names no product: the record's partition (and key) does.
    """

    trade_id: Annotated[int, Field(ge=0, le=MAX_BIGINT)]
    side: Literal["buy", "sell"]
    size: DecimalString
    price: DecimalString
    time: FeedTime


MATCH_FRAME = TypeAdapter(MatchFrame)
REST_TRADE = TypeAdapter(RestTrade)
