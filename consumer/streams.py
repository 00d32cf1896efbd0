"""What the consumer writes: each table with the topic it is read from and how.

A stream is a topic, a decoder and a table; the same writer code (consumer/writer.py) runs
each. `order` from KAFKA_TOPIC always; `trade` from KAFKA_TRADES_TOPIC when that is set
(the trade tape). A new message type is a new decoder module and a new layout, plus one
line here.

Thread layout: one writer thread per product *and* stream, not one thread per product
carrying both topics. Each table then keeps the writer's guarantees unchanged: its own
pinned consumer, its own offsets committed after its own transaction, its own /healthz
entry and stall clock, and its own backpressure (a pause stops only that partition). A
flood of repaired trades, or a `trade` table that refuses writes, never delays the
ticker's rows, and a batch never spans two tables. The cost is one more thread, Kafka
consumer and MySQL connection per product, which idle at the tape's rates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consumer.decode import Decoder, decode_batch
from consumer.decode_trade import decode_trade_batch
from consumer.settings import ConsumerSettings
from consumer.sink import ORDER, TRADE, Table


@dataclass(frozen=True)
class Stream:
    """A table, the setting naming its topic, and the decoder of that topic's records."""

    table: Table
    topic_of: Callable[[ConsumerSettings], str]
    decode: Decoder

    @property
    def name(self) -> str:
        return self.table.name


ORDERS = Stream(ORDER, lambda settings: settings.kafka_topic, decode_batch)
TRADES = Stream(TRADE, lambda settings: settings.kafka_trades_topic, decode_trade_batch)


def streams(settings: ConsumerSettings) -> tuple[Stream, ...]:
    """The streams this consumer writes: `trade` only while the tape is on."""
    return (ORDERS, TRADES) if settings.kafka_trades_topic else (ORDERS,)
