"""Trades: one record per match, its `match` / REST text, and each product's history.

Every trade the market makes is kept here, whoever received it: the `matches`
channel sends them as they happen, the REST endpoint pages back through them
(`rest.py`), and tests compare a stored tape with `history.all()`.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

MatchKind = Literal["match", "last_match"]

MATCH_KEYS: tuple[str, ...] = (
    "type", "trade_id", "maker_order_id", "taker_order_id", "side", "size", "price",
    "product_id", "sequence", "time",
)  # fmt: skip
REST_KEYS: tuple[str, ...] = ("time", "trade_id", "price", "size", "side")

# Order ids look like UUIDs: a random per-product prefix and a scrambled number (an odd
# multiplier is a bijection mod 2**48, so ids never repeat). Made when read, not stored:
# two strings per trade would be a third of the history's memory.
_ORDER_MULTIPLIER = 0x9E3779B97F4B
_ORDER_MASK = (1 << 48) - 1

# The REST API writes prices with 8 decimals ("10.00000000") where the feed writes the
# product's own tick ("0.03712"): same number, different text.
_REST_DECIMALS = 8


def order_id(prefix: str, number: int) -> str:
    return f"{prefix}{(number * _ORDER_MULTIPLIER) & _ORDER_MASK:012x}"


class Trade(NamedTuple):
    """One match, with Coinbase's field names (a NamedTuple: cheap at 50k trades/s).

    `side` is the maker's side, as on `match` and REST (a ticker carries the taker's).
    `time` is the feed's text, kept verbatim so REST and the feed agree exactly.
    `maker_order_id` / `taker_order_id` are properties (see _ORDER_MULTIPLIER): each
    trade has its own maker order; the trades of one batch share one taker order.
    """

    trade_id: int
    side: str
    size: str
    price: str
    product_id: str
    sequence: int
    time: str
    batch: int  # the first trade id of its batch: names the batch's taker order
    order_prefix: str  # the product's order id prefix

    @property
    def maker_order_id(self) -> str:
        return order_id(self.order_prefix, 2 * self.trade_id)  # even: makers, odd: takers

    @property
    def taker_order_id(self) -> str:
        return order_id(self.order_prefix, 2 * self.batch + 1)

    def match(self, kind: MatchKind = "match") -> dict[str, object]:
        """The `match` message as a dict, keys in Coinbase's order (MATCH_KEYS)."""
        return {
            "type": kind, "trade_id": self.trade_id, "maker_order_id": self.maker_order_id,
            "taker_order_id": self.taker_order_id, "side": self.side, "size": self.size,
            "price": self.price, "product_id": self.product_id, "sequence": self.sequence,
            "time": self.time,
        }  # fmt: skip

    def frame(self, kind: MatchKind = "match") -> bytes:
        """The feed's frame for this trade, in Coinbase's key order (`last_match`: same fields)."""
        return (
            f'{{"type":"{kind}","trade_id":{self.trade_id},'
            f'"maker_order_id":"{self.maker_order_id}","taker_order_id":"{self.taker_order_id}",'
            f'"side":"{self.side}","size":"{self.size}","price":"{self.price}",'
            f'"product_id":"{self.product_id}","sequence":{self.sequence},"time":"{self.time}"}}'
        ).encode()

    def rest_text(self) -> str:
        """The REST object: {"time","trade_id","price","size","side"}, price with 8 decimals."""
        return (
            f'{{"time":"{self.time}","trade_id":{self.trade_id},'
            f'"price":"{rest_decimal(self.price)}","size":"{rest_decimal(self.size)}",'
            f'"side":"{self.side}"}}'
        )


def rest_decimal(text: str) -> str:
    """`text` padded with zeros to 8 decimals (never shortened: that would change the number)."""
    whole, _, fraction = text.partition(".")
    if len(fraction) >= _REST_DECIMALS:
        return text
    return f"{whole}.{fraction.ljust(_REST_DECIMALS, '0')}"


class TradeHistory:
    """One product's trades, contiguous by trade id, the newest `keep` of them.

    Not thread-safe by itself: the market guards it with its lock.
    """

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._trades: list[Trade] = []
        self.made = 0  # trades added in total, forgotten ones included

    def add(self, trades: list[Trade]) -> None:
        if self._trades and trades and trades[0].trade_id != self._trades[-1].trade_id + 1:
            raise ValueError("trade ids must be contiguous")  # the whole point of the tape
        self._trades.extend(trades)
        self.made += len(trades)
        # Forget in chunks, so trimming costs O(1) per trade, not a list shift each time.
        excess = len(self._trades) - self._keep
        if excess > max(1, self._keep // 8):
            del self._trades[:excess]

    def last(self) -> Trade:
        return self._trades[-1]

    def all(self) -> list[Trade]:
        """Every trade kept, oldest first."""
        start = max(0, len(self._trades) - self._keep)
        return self._trades[start:]

    def page(self, before: int | None, after: int | None, limit: int) -> list[Trade]:
        """Coinbase's cursor page, newest first.

        after=X: the `limit` trades just older than X (ids X-1, X-2, ...);
        before=X: the `limit` trades just newer than X (ids X+limit .. X+1);
        neither: the newest `limit`. Ids outside the kept history are simply absent
        (before=X below it pages from the oldest trade kept).
        """
        trades = self._trades
        if not trades:
            return []
        first = max(trades[0].trade_id, trades[-1].trade_id - self._keep + 1)
        newest = trades[-1].trade_id
        if before is not None:
            low = max(before + 1, first)
            high = min(newest, low + limit - 1)
        else:
            high = newest if after is None else min(newest, after - 1)
            low = max(high - limit + 1, first)
        if high < low:
            return []
        offset = trades[0].trade_id
        return trades[high - offset : low - offset - 1 if low > offset else None : -1]
