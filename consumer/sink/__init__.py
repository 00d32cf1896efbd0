"""Where the consumer's rows go: the `Sink` seam and its MySQL implementation, per table."""

from consumer.sink.base import OrderSink, Sink, WriteResult
from consumer.sink.errors import SinkError
from consumer.sink.layout import COLUMN_NAMES, ORDER, Row, Table
from consumer.sink.mysql_sink import INSERT, LOAD_DATA, MySQLOrderSink, MySQLSink, WritePath
from consumer.sink.trade_layout import TRADE

__all__ = [
    "COLUMN_NAMES",
    "INSERT",
    "LOAD_DATA",
    "ORDER",
    "TRADE",
    "MySQLOrderSink",
    "MySQLSink",
    "OrderSink",
    "Row",
    "Sink",
    "SinkError",
    "Table",
    "WritePath",
    "WriteResult",
]
