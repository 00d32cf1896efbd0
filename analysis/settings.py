"""Settings of `python -m analysis`: where MySQL is, as a read-only account, and the HTTP port."""

from __future__ import annotations

from pydantic import Field

from shared.settings import MySQLSettings, Port


class AnalysisSettings(MySQLSettings):
    """Environment variables of the analysis service (a bad one stops start-up: `load`)."""

    analysis_host: str = Field("0.0.0.0", min_length=1)
    analysis_port: Port = 8000
    # SELECT only (schema.sql); the password in schema.sql is for local runs.
    mysql_user: str = Field("ticker_reader", min_length=1)
    # Connections held open; requests beyond it wait for one (up to the query timeout).
    analysis_db_pool: int = Field(8, ge=1, le=64)
    # The server stops any statement running longer (max_statement_time / max_execution_time).
    analysis_query_timeout_s: float = Field(5.0, gt=0, le=300)
    # `ticks` of GET /products is a COUNT over the index: computed at most this often.
    analysis_count_cache_s: float = Field(30.0, ge=0, le=86_400)
