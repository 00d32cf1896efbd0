"""The row layout of a table, written once by column name; both write paths derive from it.

A row is a dict keyed by column name (the ticker's fields plus what the consumer adds).
Each path formats it with one template built here, so the INSERT, the LOAD DATA file and
the column list can never disagree by position.

Formatting is done without a general-purpose escaper (the hot path's main cost). That is
safe because decoding lets through only: the writer's own product id (a configured
`[A-Z0-9]+-[A-Z0-9]+`), ints, decimal strings of digits and one dot, `buy`/`sell`,
DATETIME literals the consumer formatted itself, order ids of `[0-9A-Za-z-]`, `ws`/`rest`,
and None. None of these can hold a quote, a backslash, a tab or a newline.

`ORDER` is `order`'s layout (its columns are also exported as COLUMNS, COLUMN_NAMES, …);
another table's lives in a module of its own (consumer/sink/trade_layout.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from shared.models import DECIMAL_FIELDS, TradeTicker

Row = dict[str, object]
Kind = Literal["int", "text", "nullable", "nullable_int"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind


def _decimal(name: str) -> Column:
    return Column(name, "nullable" if name in TradeTicker.__optional_keys__ else "text")


COLUMNS: tuple[Column, ...] = (
    Column("product_id", "text"),
    Column("sequence", "int"),
    Column("trade_id", "int"),
    Column("side", "text"),
    *(_decimal(name) for name in DECIMAL_FIELDS),
    Column("time", "text"),  # DATETIME(6) literal, UTC
    Column("received_at", "nullable"),  # producer's receive time, when its header is there
    Column("kafka_partition", "int"),
    Column("kafka_offset", "int"),
)


class Format:
    """One path's text for a batch of rows, compiled once from a table's columns.

    The renderer is an f-string generated from the layout (as `dataclasses` generates
    `__init__`): three times faster than `str.format_map`, and still written once, by
    column name. Int columns go through `:d`, so a non-int there fails loudly.
    """

    def __init__(
        self,
        start: str,
        separator: str,
        end: str,
        quote: str,
        null: str,
        columns: tuple[Column, ...],
    ) -> None:
        fields = []
        for column in columns:
            value = f"r[{column.name!r}]"
            if column.kind == "int":
                fields.append(f"{{{value}:d}}")
            elif column.kind == "text":
                fields.append(f"{quote}{{{value}}}{quote}")
            elif column.kind == "nullable_int":
                value = f"r.get({column.name!r})"
                fields.append(f"{{NULL if {value} is None else '%d' % {value}}}")
            else:  # absent from the frame (a missing optional field) or None
                value = f"r.get({column.name!r})"
                fields.append(f"{{NULL if {value} is None else Q + {value} + Q}}")
        self.template = start + separator.join(fields) + end
        assert '"' not in self.template and "\\" not in self.template  # fits f"..." below
        literal = self.template.replace("\t", "\\t").replace("\n", "\\n")
        source = f'def render(rows):\n    return "".join([f"{literal}" for r in rows])\n'
        namespace: dict[str, Any] = {"NULL": null, "Q": quote}
        exec(compile(source, f"<{self.__class__.__name__} {start!r}>", "exec"), namespace)
        self._render: Callable[[list[Row]], str] = namespace["render"]

    def render(self, rows: list[Row]) -> str:
        return self._render(rows)


class Table:
    """One table's column list and both paths' renderers, compiled once from its columns."""

    def __init__(self, name: str, columns: tuple[Column, ...]) -> None:
        self.name = name
        self.columns = columns
        self.column_names = tuple(column.name for column in columns)
        self.column_list = ", ".join(f"`{name}`" for name in self.column_names)
        # `(…),(…),` for INSERT … VALUES (the caller drops the last comma).
        self.sql_values = Format("(", ",", "),", quote="'", null="NULL", columns=columns)
        # Tab-separated lines for LOAD DATA, `\N` for NULL.
        self.tsv_lines = Format("", "\t", "\n", quote="", null="\\N", columns=columns)


ORDER = Table("order", COLUMNS)
# `order`'s, under the names the tests and the benchmark import.
COLUMN_NAMES, COLUMN_LIST = ORDER.column_names, ORDER.column_list
SQL_VALUES, TSV_LINES = ORDER.sql_values, ORDER.tsv_lines
