"""A REST trades page, checked and cut into its objects, each kept byte for byte as served.

Coinbase's objects are flat ({"time","trade_id","price","size","side"}), so a top-level scan
that tracks strings is enough to find where each object starts and ends; orjson then checks
each slice and its types. Anything else is a BadBody naming what was wrong.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import orjson

SIDES = ("buy", "sell")
_WHITESPACE = b" \t\r\n"
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


class BadBody(Exception):
    """The page is not a JSON array of trades; `kind` names how (for metrics and logs)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class RestTrade(NamedTuple):
    trade_id: int
    raw: bytes  # the object exactly as served


def parse_page(body: bytes) -> list[RestTrade]:
    """The trades of a page, in the order served; raises BadBody."""
    stripped = body.strip(_WHITESPACE)
    if not stripped.startswith(b"["):
        raise BadBody("not_json", f"not a JSON array: {body[:80]!r}")
    try:
        orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        raise BadBody("invalid_json", f"invalid JSON ({exc}) in {len(body)} bytes") from None
    return [_trade(raw) for raw in _objects(stripped)]


def _objects(array: bytes) -> list[bytes]:
    """Slices of the top-level objects of a valid JSON array."""
    found: list[bytes] = []
    depth, start, in_string, escaped = 0, 0, False, False
    for index, byte in enumerate(array):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"{[":
            depth += 1
            if depth == 2 and byte == 0x7B:
                start = index
        elif byte in b"}]":
            if depth == 2 and byte == 0x7D:
                found.append(array[start : index + 1])
            depth -= 1
        elif depth == 1 and byte not in _WHITESPACE and byte != 0x2C:
            raise BadBody("wrong_types", "the array holds something other than objects")
    return found


def _trade(raw: bytes) -> RestTrade:
    fields = orjson.loads(raw)
    trade_id = fields.get("trade_id")
    if not isinstance(trade_id, int) or isinstance(trade_id, bool) or trade_id < 0:
        raise BadBody("wrong_types", f"trade_id is not a whole number: {raw[:120]!r}")
    problem = _problem(fields)
    if problem:
        raise BadBody("wrong_types", f"trade {trade_id}: {problem}")
    return RestTrade(trade_id, raw)


def _problem(fields: dict[str, object]) -> str | None:
    time = fields.get("time")
    if not isinstance(time, str) or not _TIME.match(time):
        return f"time is not an ISO-8601 string: {time!r}"
    if fields.get("side") not in SIDES:
        return f"side is not buy or sell: {fields.get('side')!r}"
    for name in ("price", "size"):
        value = fields.get(name)
        if not isinstance(value, str) or not _decimal(value):
            return f"{name} is not a decimal string: {value!r}"
    return None


def _decimal(text: str) -> bool:
    try:
        return text == text.strip() and Decimal(text).is_finite()
    except InvalidOperation:
        return False
