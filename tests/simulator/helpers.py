"""Small synchronous client helpers shared by the simulator tests (real sockets)."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from ops.pipeline import PRODUCTS

THREE = PRODUCTS  # the pipeline's products
DECIMAL = re.compile(r"^\d+\.\d+$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def open_client(url: str, **kwargs: Any) -> ClientConnection:
    # A client that stops reading a firehose cannot read the close answer either
    # (its queue is full), so keep the close timeout short.
    options: dict[str, Any] = {"open_timeout": 5, "close_timeout": 0.5, **kwargs}
    connection: ClientConnection = connect(url, **options)
    return connection


def subscribe(
    ws: ClientConnection,
    products: Iterable[str] = THREE,
    channels: Iterable[object] = ("ticker", "heartbeat"),
    **extra: object,
) -> dict[str, Any]:
    """Send a subscribe and return the first answer (subscriptions or error)."""
    ws.send(json.dumps({"type": "subscribe", "product_ids": list(products),
                        "channels": list(channels), **extra}))  # fmt: skip
    answer: dict[str, Any] = json.loads(ws.recv(timeout=5))
    return answer


def recv_text(ws: ClientConnection, timeout: float = 5.0) -> str:
    message = ws.recv(timeout=timeout)
    assert isinstance(message, str), "the feed sends text frames only"
    return message


def collect_timed(ws: ClientConnection, seconds: float) -> list[tuple[float, str]]:
    """(seconds since the call, frame) for everything received for `seconds`.

    Stops early if the server closes the connection.
    """
    frames: list[tuple[float, str]] = []
    started = time.monotonic()
    deadline = started + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = recv_text(ws, timeout=left)
        except (TimeoutError, ConnectionClosed):
            break
        frames.append((time.monotonic() - started, frame))
    return frames


def collect(ws: ClientConnection, seconds: float) -> list[str]:
    """Everything received for `seconds` (stops early if the server closes)."""
    return [frame for _, frame in collect_timed(ws, seconds)]


def read_until_closed(ws: ClientConnection, timeout: float = 10.0) -> list[str]:
    """All frames until the server closes the connection; fails after `timeout`."""
    frames: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the server did not close the connection in time"
        try:
            frames.append(recv_text(ws, timeout=left))
        except ConnectionClosed:
            return frames


def tickers(frames: Iterable[str]) -> list[dict[str, Any]]:
    """The ticker messages among `frames` (malformed frames are skipped)."""
    return messages_of(frames, "ticker")


def is_snapshot(message: dict[str, Any]) -> bool:
    return "trade_id" not in message


def rest_get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one plain HTTP request; error statuses are answers too."""
    request = urllib.request.Request(url, method=method, headers={"User-Agent": "tests"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), dict(response.headers), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), bytes(error.read())


def messages_of(frames: Iterable[str], kind: str) -> list[dict[str, Any]]:
    """The messages of type `kind` among `frames` (malformed frames are skipped)."""
    found = []
    for frame in frames:
        try:
            message = json.loads(frame)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("type") == kind:
            found.append(message)
    return found
