"""Loading a JSON-lines capture for replay (each line is sent verbatim)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ReplayLine:
    data: bytes  # the line as captured, without its line break
    product_id: str | None  # None: sent to every subscriber (e.g. garbage lines)
    is_ticker: bool


def load_replay(path: str | Path) -> list[ReplayLine]:
    """Parse a capture once, up front, so replaying costs no JSON work.

    Blank lines are skipped; lines that are not JSON objects are kept and
    replayed as they are, which lets a capture carry deliberate garbage.
    """
    lines: list[ReplayLine] = []
    with open(path, "rb") as handle:
        for raw in handle:
            data = raw.rstrip(b"\r\n")
            if not data.strip():
                continue
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
            product = parsed.get("product_id") if isinstance(parsed, dict) else None
            if not isinstance(product, str):
                product = None
            is_ticker = isinstance(parsed, dict) and parsed.get("type") == "ticker"
            lines.append(ReplayLine(data, product, is_ticker and product is not None))
    return lines
