"""Time parsing and the ticker model: property-based and worked examples."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.models import FEED_TIME_PATTERN, TRADE_TICKER, parse_feed_time
from tests.factories import ticker

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)


@given(moments, st.integers(min_value=0, max_value=999))
def test_nanosecond_times_truncate_to_microseconds(moment: datetime, nanos: int) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{nanos:03d}Z"
    assert parse_feed_time(text) == moment


@given(moments, st.integers(min_value=1, max_value=9))
def test_every_precision_parses_as_the_same_fraction(moment: datetime, digits: int) -> None:
    fraction = moment.strftime("%f") + "000"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + fraction[:digits] + "Z"
    parsed = parse_feed_time(text)
    assert parsed.tzinfo is UTC
    assert moment - parsed < timedelta(microseconds=1 if digits >= 6 else 10 ** (6 - digits))
    assert parsed <= moment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-09-29T13:45:58.9Z", datetime(2026, 9, 29, 13, 45, 58, 900000, tzinfo=UTC)),
        ("2026-09-29T13:45:58.167359596Z", datetime(2026, 9, 29, 13, 45, 58, 167359, tzinfo=UTC)),
        ("2026-09-29T13:45:58.16735959Z", datetime(2026, 9, 29, 13, 45, 58, 167359, tzinfo=UTC)),
        ("2026-09-29T13:45:58Z", datetime(2026, 9, 29, 13, 45, 58, tzinfo=UTC)),
    ],
)
def test_feed_time_examples(text: str, expected: datetime) -> None:
    assert parse_feed_time(text) == expected


@given(st.text(max_size=40))
def test_arbitrary_text_is_a_clear_error_or_a_time(text: str) -> None:
    try:
        parsed = parse_feed_time(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert text.endswith("Z") and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-09-29T13:45:58.116787+00:00",
        "2026-09-29 13:45:58Z",
        "2026-13-01T00:00:00Z",
        "2026-09-29T13:45:58.1234567890Z",
        "2026-09-29T13:45:58.Z",
    ],
)
def test_non_utc_or_malformed_times_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_feed_time(text)


decimal_strings = st.decimals(
    min_value=0, max_value=10**20 - 1, places=8, allow_nan=False, allow_infinity=False
).map(lambda value: f"{value:f}")


@given(decimal_strings)
def test_decimal_strings_that_fit_are_kept_verbatim(price: str) -> None:
    validated = TRADE_TICKER.validate_json(ticker("BTC-USD", 1, price=price))
    assert validated["price"] == price


@given(st.integers(min_value=19, max_value=30))
def test_more_fraction_digits_than_the_column_are_rejected(digits: int) -> None:
    with pytest.raises(ValidationError):
        TRADE_TICKER.validate_json(ticker("BTC-USD", 1, price="0." + "1" * digits))


@pytest.mark.parametrize("day", ["00", "01", "28", "29", "30", "31", "32"])
def test_the_time_pattern_knows_the_calendar_of_every_year(day: str) -> None:
    """The pattern (run in pydantic-core, no Python validator) accepts exactly the dates
    Python's calendar accepts: leap years by the 4/100/400 rule, no year 0, no 13th month."""
    pattern = re.compile(FEED_TIME_PATTERN)
    for year in range(10_000):
        for month in range(14):
            text = f"{year:04d}-{month:02d}-{day}T00:00:00Z"
            try:
                date.fromisoformat(text[:10])
                real = True
            except ValueError:
                real = False
            assert bool(pattern.match(text)) is real, text


@given(st.text(alphabet="0123456789:T-.Z٣", min_size=19, max_size=30))
def test_the_time_pattern_accepts_only_real_ascii_times(text: str) -> None:
    if re.match(FEED_TIME_PATTERN, text):
        assert text.isascii()
        datetime.fromisoformat(text[:19])  # a real date and time of day


@pytest.mark.parametrize(
    "text",
    [
        "2026-09-29T24:00:00Z",
        "2026-09-29T23:60:00Z",
        "2026-09-29T23:59:60Z",
        "2026-02-29T00:00:00Z",
    ],
)
def test_trade_tickers_with_impossible_times_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError):
        TRADE_TICKER.validate_json(ticker("BTC-USD", 1, time=text))
