"""Where the consumer's rows go: the `OrderSink` seam and its MySQL implementation."""

from consumer.sink.base import OrderSink, WriteResult
from consumer.sink.errors import SinkError
from consumer.sink.layout import COLUMN_NAMES, Row
from consumer.sink.mysql_sink import INSERT, LOAD_DATA, MySQLOrderSink, WritePath

__all__ = [
    "COLUMN_NAMES",
    "INSERT",
    "LOAD_DATA",
    "MySQLOrderSink",
    "OrderSink",
    "Row",
    "SinkError",
    "WritePath",
    "WriteResult",
]
