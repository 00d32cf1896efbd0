"""Coinbase Exchange WebSocket authentication: the signed fields of a subscribe message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def signed_fields(
    key: str, secret: str, passphrase: str, now: float | None = None
) -> dict[str, str]:
    """Fields to add to the subscribe message; sign afresh on every (re)connect.

    The timestamp must be a JSON string of Unix seconds (a number is rejected).
    """
    timestamp = str(int(time.time() if now is None else now))
    message = f"{timestamp}GET/users/self/verify".encode()
    digest = hmac.new(base64.b64decode(secret), message, hashlib.sha256).digest()
    return {
        "signature": base64.b64encode(digest).decode(),
        "key": key,
        "passphrase": passphrase,
        "timestamp": timestamp,
    }
