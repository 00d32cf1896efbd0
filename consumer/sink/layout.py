"""The row layout of `order`, written once by column name; both write paths derive from it.

A row is a dict keyed by column name (the ticker's fields plus what the consumer adds).
Each path formats it with one template built here, so the INSERT, the LOAD DATA file and
the column list can never disagree by position.

Formatting is done without a general-purpose escaper (the hot path's main cost). That is
safe because decoding lets through only: the writer's own product id (a configured
`[A-Z0-9]+-[A-Z0-9]+`), ints, decimal strings of digits and one dot, `buy`/`sell`,
DATETIME literals the consumer formatted itself, and None. None of these can hold a
quote, a backslash, a tab or a newline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.models import DECIMAL_FIELDS, TradeTicker

Row = dict[str, object]
Kind = Literal["int", "text", "nullable"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind


def _decimal(name: str) -> Column:
    required = TradeTicker.model_fields[name].is_required()
    return Column(name, "text" if required else "nullable")


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
COLUMN_NAMES = tuple(column.name for column in COLUMNS)
NULLABLE = tuple(column.name for column in COLUMNS if column.kind == "nullable")
COLUMN_LIST = ", ".join(f"`{name}`" for name in COLUMN_NAMES)


class Format:
    """One path's text for a row: a template plus how a nullable value is written.

    Nullable values are rendered into extra keys (`name/fmt`) of the row, so rendering
    twice (a retried batch) gives the same text.
    """

    def __init__(
        self, key: str, start: str, separator: str, end: str, quote: str, null: str
    ) -> None:
        self._quote, self._null = quote, null
        self._nullable = tuple((name, f"{name}/{key}") for name in NULLABLE)
        fields = []
        for column in COLUMNS:
            if column.kind == "int":
                fields.append(f"{{{column.name}:d}}")
            elif column.kind == "text":
                fields.append(f"{quote}{{{column.name}}}{quote}")
            else:
                fields.append(f"{{{column.name}/{key}}}")
        self.template = start + separator.join(fields) + end

    def render(self, rows: list[Row]) -> str:
        quote, null, nullable = self._quote, self._null, self._nullable
        template = self.template.format_map
        out = []
        for row in rows:
            for name, rendered in nullable:
                value = row[name]
                row[rendered] = null if value is None else f"{quote}{value}{quote}"
            out.append(template(row))
        return "".join(out)


# `(…),(…)` for INSERT … VALUES (the caller drops the last comma).
SQL_VALUES = Format("sql", start="(", separator=",", end="),", quote="'", null="NULL")
# Tab-separated lines for LOAD DATA, `\N` for NULL.
TSV_LINES = Format("tsv", start="", separator="\t", end="\n", quote="", null="\\N")
