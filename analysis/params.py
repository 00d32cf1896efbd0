"""Request parameters: time parsing, candle ranges, and the one-line errors the API returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

GRANULARITIES = (60, 300, 900, 3600, 21600, 86400)
MAX_BUCKETS = 300


class ApiError(Exception):
    """An answer other than 200, with the one-line reason the client gets as `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_time(name: str, text: str) -> datetime:
    """ISO-8601 (an offset or Z; none means UTC) or Unix seconds, as a naive UTC datetime."""
    try:
        if text.replace(".", "", 1).isdigit():
            value = datetime.fromtimestamp(float(text), UTC)
        else:
            value = datetime.fromisoformat(text.replace("z", "Z"))
    except (ValueError, OverflowError, OSError):
        raise ApiError(400, f"{name} is not an ISO-8601 time or Unix seconds: {text!r}") from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class CandleRange:
    """Whole buckets [start, end) of `granularity` seconds, aligned on multiples of it."""

    granularity: int
    start: datetime
    end: datetime


EPOCH = datetime(1970, 1, 1)


def floor_to(value: datetime, seconds: int) -> datetime:
    whole = int((value - EPOCH).total_seconds() // seconds) * seconds
    return EPOCH + timedelta(seconds=whole)


def candle_range(granularity: int, start: str | None, end: str | None) -> CandleRange:
    """The buckets a candles request covers; 400 beyond 300 buckets or for a bad value.

    The bucket holding `start` is the first; the bucket holding `end` is the last unless
    `end` falls on its edge. Without either bound: the latest 300 buckets up to now.
    """
    if granularity not in GRANULARITIES:
        allowed = ", ".join(map(str, GRANULARITIES))
        raise ApiError(400, f"granularity must be one of {allowed}, not {granularity}")
    step = timedelta(seconds=granularity)
    if start is None and end is None:
        last = floor_to(utc_now(), granularity) + step
        return CandleRange(granularity, last - MAX_BUCKETS * step, last)
    if start is None or end is None:
        raise ApiError(400, "give both start and end, or neither (the latest 300 buckets)")
    first = floor_to(parse_time("start", start), granularity)
    end_time = parse_time("end", end)
    last = floor_to(end_time, granularity)
    if last < end_time:
        last += step
    if last <= first:
        raise ApiError(400, "end must be after start")
    buckets = (last - first) // step
    if buckets > MAX_BUCKETS:
        raise ApiError(
            400,
            f"at most {MAX_BUCKETS} buckets per request; start..end at granularity "
            f"{granularity} spans {buckets}",
        )
    return CandleRange(granularity, first, last)


def time_window(
    start: str | None, end: str | None, default: timedelta, longest: timedelta
) -> tuple[datetime, datetime]:
    """[start, end) from optional bounds (end defaults to now), at most `longest` long."""
    end_time = parse_time("end", end) if end is not None else utc_now()
    start_time = parse_time("start", start) if start is not None else end_time - default
    if end_time <= start_time:
        raise ApiError(400, "end must be after start")
    if end_time - start_time > longest:
        raise ApiError(400, f"start..end may span at most {longest.days} days")
    return start_time, end_time
