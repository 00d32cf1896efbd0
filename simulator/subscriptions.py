"""Validation of subscribe / unsubscribe requests, as the Exchange feed does it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

SUPPORTED_CHANNELS: tuple[str, ...] = ("ticker", "heartbeat", "matches")
# Real channels that need an authenticated feed; Coinbase answers with this reason.
_AUTH_REASON = "level2, level3, and full channels now require authentication."
_AUTH_CHANNELS = frozenset({"level2", "level3", "full", "user"})

Channels = dict[str, list[str]]  # channel name -> product ids, in request order


class SubscribeError(ValueError):
    """A request Coinbase would answer with {"type":"error",...}; str(self) is the reason."""


def _product_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise SubscribeError(f"{where} must be a list of strings")
    return list(dict.fromkeys(value))  # drop duplicates, keep order


def parse_subscribe(message: dict[str, Any], known_products: Collection[str]) -> Channels:
    """Channels and products requested by a subscribe message.

    Raises SubscribeError with the reason the real feed would give.
    """
    # Auth fields are optional; only their shape is checked. Coinbase rejects a
    # numeric timestamp, which is a common client bug worth reproducing.
    if "timestamp" in message and not isinstance(message["timestamp"], str):
        raise SubscribeError("timestamp must be a string of unix seconds")
    for key in ("signature", "key", "passphrase"):
        if key in message and not isinstance(message[key], str):
            raise SubscribeError(f"{key} must be a string")
    top = _product_list(message.get("product_ids", []), "product_ids")
    raw_channels = message.get("channels")
    if not isinstance(raw_channels, list) or not raw_channels:
        raise SubscribeError("channels must be a non-empty list")
    result: Channels = {}
    for channel in raw_channels:
        if isinstance(channel, str):
            name, products = channel, top
        elif isinstance(channel, dict) and isinstance(channel.get("name"), str):
            name = channel["name"]
            products = top
            if "product_ids" in channel:
                products = _product_list(channel["product_ids"], f"{name} product_ids")
        else:
            raise SubscribeError("channels must contain names or {name, product_ids} objects")
        if name not in SUPPORTED_CHANNELS:
            if name in _AUTH_CHANNELS:
                raise SubscribeError(_AUTH_REASON)
            raise SubscribeError(f"{name} is not a valid channel")
        if not products:
            raise SubscribeError(f"No product ids provided for the {name} channel")
        for product in products:
            if product not in known_products:
                raise SubscribeError(f"{product} is not a valid product")
        merged = result.setdefault(name, [])
        merged.extend(p for p in products if p not in merged)
    return result


def merge(current: Channels, added: Channels) -> Channels:
    """Subscriptions after a further subscribe message."""
    merged = {name: list(ids) for name, ids in current.items()}
    for name, ids in added.items():
        target = merged.setdefault(name, [])
        target.extend(p for p in ids if p not in target)
    return merged


def remove(current: Channels, message: dict[str, Any]) -> Channels:
    """Subscriptions after an unsubscribe message (lenient: bad parts are ignored).

    A channel named without product ids is dropped entirely; product ids
    without channels are removed from every channel.
    """
    top = message.get("product_ids")
    top_ids = {p for p in top if isinstance(p, str)} if isinstance(top, list) else None
    remaining = {name: list(ids) for name, ids in current.items()}
    channels = message.get("channels")
    if not isinstance(channels, list):
        channels = list(remaining) if top_ids else []
    for channel in channels:
        if isinstance(channel, str):
            name, ids = channel, top_ids
        elif isinstance(channel, dict) and isinstance(channel.get("name"), str):
            name = channel["name"]
            own = channel.get("product_ids")
            ids = {p for p in own if isinstance(p, str)} if isinstance(own, list) else top_ids
        else:
            continue
        if name not in remaining:
            continue
        if ids is None:
            del remaining[name]
        else:
            remaining[name] = [p for p in remaining[name] if p not in ids]
    return {name: ids for name, ids in remaining.items() if ids}
