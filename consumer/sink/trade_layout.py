"""The row layout of `trade` (the trade tape): one row per (product_id, trade_id).

A row from the feed (`match` / `last_match`) fills every column; one from REST (published
by the repair command) has no `sequence` nor order ids: those are NULL. `source` is the
consumer's own `ws` or `rest`. Values are as safe to format as `order`'s (layout.py).
"""

from __future__ import annotations

from consumer.sink.layout import Column, Table

TRADE = Table(
    "trade",
    (
        Column("product_id", "text"),
        Column("trade_id", "int"),
        Column("side", "text"),  # the maker's, as Coinbase reports it
        Column("price", "text"),
        Column("size", "text"),
        Column("time", "text"),  # DATETIME(6) literal, UTC
        Column("sequence", "nullable_int"),  # NULL from REST
        Column("maker_order_id", "nullable"),  # NULL from REST
        Column("taker_order_id", "nullable"),
        Column("source", "text"),  # `ws` or `rest`
        Column("received_at", "nullable"),  # producer's (or repair's) receive time
        Column("kafka_partition", "int"),
        Column("kafka_offset", "int"),
    ),
)
