"""How values leave the API: exact decimal text, ISO-8601 UTC times, hand-built candle JSON."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, localcontext


def decimal_text(value: str) -> str:
    """The server's DECIMAL text without the column scale's trailing zeros ("84000.12")."""
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value


def product_text(price: str, size: str) -> str:
    """price x size, exact: enough digits that nothing is rounded, printed without exponent."""
    with localcontext() as context:
        context.prec = 160
        return decimal_text(format(Decimal(price) * Decimal(size), "f"))


def iso_time(value: datetime) -> str:
    """A stored UTC DATETIME(6) as ISO-8601 with Z, microseconds always shown."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def candles_json(buckets: Sequence[tuple[int, str, str, str, str, str]]) -> bytes:
    """Coinbase's candle arrays as JSON numbers carrying the stored digits (no float on the way).

    Every value is a DECIMAL's text from the server (digits and one dot, never an exponent or
    sign), which is already valid JSON number syntax once trailing zeros are trimmed.
    """
    parts = [
        f"[{bucket},{decimal_text(low)},{decimal_text(high)},{decimal_text(open_)},"
        f"{decimal_text(close)},{decimal_text(volume)}]"
        for bucket, low, high, open_, close, volume in buckets
    ]
    return ("[" + ",".join(parts) + "]").encode()
