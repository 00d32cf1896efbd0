"""Malformed frames: the garbage a robust client must survive without crashing."""

from __future__ import annotations

MALFORMED_KINDS: tuple[str, ...] = (
    "not_json",
    "truncated_json",
    "missing_product_id",
    "unknown_product",
    "json_array",
    "empty",
)

UNKNOWN_PRODUCT = "DOGE-XYZ"


def malformed_frame(index: int, sample: str) -> bytes:
    """The `index`-th malformed frame, cycling through MALFORMED_KINDS.

    `sample` is a well-formed ticker text; most kinds are derived from it so
    the garbage looks like the real thing (right keys, plausible values).
    """
    kind = MALFORMED_KINDS[index % len(MALFORMED_KINDS)]
    if kind == "not_json":
        return b"<html><body>502 Bad Gateway</body></html>"
    if kind == "truncated_json":
        return sample[: len(sample) // 2].encode()
    if kind == "missing_product_id":
        start = sample.index('"product_id":')
        end = sample.index(",", start) + 1
        return (sample[:start] + sample[end:]).encode()
    if kind == "unknown_product":
        start = sample.index('"product_id":"') + len('"product_id":"')
        end = sample.index('"', start)
        return (sample[:start] + UNKNOWN_PRODUCT + sample[end:]).encode()
    if kind == "json_array":
        return ("[" + sample + "]").encode()
    return b""  # "empty": a zero-length text frame
