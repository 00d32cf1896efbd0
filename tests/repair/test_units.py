"""The pure parts: page bodies cut into their objects, id ranges, the token bucket."""

from __future__ import annotations

import pytest

from repair.body import BadBody, parse_page
from repair.holes import Hole
from repair.ranges import IdRanges
from repair.rest import TokenBucket

A = (
    b'{"time":"2026-12-07T01:58:46.011261Z","trade_id":7,"price":"1.50000000",'
    b'"size":"0.1","side":"buy"}'
)
B = b'{"time":"2026-12-07T01:58:46Z","trade_id":6,"price":"1","size":"2.0","side":"sell","x":"}{"}'


def test_objects_are_kept_byte_for_byte() -> None:
    page = parse_page(b" [" + A + b" ,\n" + B + b"] ")
    assert [(t.trade_id, t.raw) for t in page] == [(7, A), (6, B)]
    assert parse_page(b"[]") == []


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"<!DOCTYPE html><html></html>", "not_json"),
        (b"[" + A[:40], "invalid_json"),
        (b'{"message": "x"}', "not_json"),
        (b"[1, 2]", "wrong_types"),
        (A.replace(b'"trade_id":7', b'"trade_id":"7"').join((b"[", b"]")), "wrong_types"),
        (A.replace(b'"1.50000000"', b"1.5").join((b"[", b"]")), "wrong_types"),
        (A.replace(b'"buy"', b'"up"').join((b"[", b"]")), "wrong_types"),
        (A.replace(b'"2026-12-07T01:58:46.011261Z"', b"1765072726").join((b"[", b"]")),
         "wrong_types"),
    ],
)  # fmt: skip
def test_bad_bodies_are_named(body: bytes, kind: str) -> None:
    with pytest.raises(BadBody) as raised:
        parse_page(body)
    assert raised.value.kind == kind


def test_id_ranges() -> None:
    ranges = IdRanges()
    ranges.add(10, 19)
    ranges.add(30, 39)
    ranges.add(20, 22)  # touches: merged
    assert ranges.missing(Hole(5, 45)) == [Hole(5, 9), Hole(23, 29), Hole(40, 45)]
    assert ranges.missing(Hole(12, 21)) == []
    assert 22 in ranges and 23 not in ranges


def test_token_bucket_paces_and_slows_after_429() -> None:
    now = [0.0]
    bucket = TokenBucket(10, clock=lambda: now[0])
    assert [round(bucket.delay(), 3) for _ in range(3)] == [0.0, 0.1, 0.2]
    now[0] = 1.0
    bucket.throttled()
    assert bucket.rate == 5
    assert bucket.delay() == 0.0 and round(bucket.delay(), 3) == 0.2
    for _ in range(100):
        bucket.succeeded()
    assert bucket.rate == 10
