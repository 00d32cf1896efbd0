"""python -m analysis: the read-only HTTP API and chart page over `order`, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys

import uvicorn

from analysis.app import create_app
from analysis.db import Database
from analysis.settings import AnalysisSettings
from shared.logs import configure_logging, get_logger
from shared.settings import load

USAGE = """\
Serves GET /products, /products/{id}/candles|ticker|stats, /trades/largest, /coverage,
/healthz, /metrics, /docs (OpenAPI) and / (live charts) on ANALYSIS_HOST:ANALYSIS_PORT.

settings (environment variables, or a .env file):
  ANALYSIS_HOST             0.0.0.0         address to listen on
  ANALYSIS_PORT             8000            HTTP port
  MYSQL_HOST / MYSQL_PORT   127.0.0.1/3306  database server
  MYSQL_USER                ticker_reader   a SELECT-only account (schema.sql creates it)
  MYSQL_PASSWORD            (empty)         ticker_reader for local runs
  MYSQL_DATABASE            coinbase
  MYSQL_SSL_CA              unset           CA file: connect over TLS
  ANALYSIS_DB_POOL          8               database connections held open
  ANALYSIS_QUERY_TIMEOUT_S  5               the server stops longer statements (answer 503)
  ANALYSIS_COUNT_CACHE_S    30              how often /products recounts rows
  LOG_FORMAT / LOG_LEVEL    auto / INFO

exit codes:
  0  stopped by SIGTERM/SIGINT (or --help)
  2  a bad setting (one line names the variable) or a bad command line
  3  the database did not answer at start-up
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description=__doc__,
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    try:
        settings = load(AnalysisSettings)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    log = get_logger("analysis")
    db = Database(settings)
    try:
        db.rows("SELECT 1")
    except Exception as exc:
        print(f"analysis cannot start: database {settings.mysql_host}:{settings.mysql_port} "
              f"did not answer: {exc}", file=sys.stderr)
        return 3
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the
    # handler that was there before it: make that a no-op, so a requested stop exits 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    log.info("analysis listening", url=f"http://{settings.analysis_host}:{settings.analysis_port}/")
    try:
        uvicorn.run(
            create_app(settings, db),
            host=settings.analysis_host,
            port=settings.analysis_port,
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=5,
            # Longer than a load balancer's idle timeout (ALB: 60 s), so the balancer, not
            # the app, closes idle keep-alive connections (no 502 on a reused connection).
            timeout_keep_alive=75,
        )
    finally:
        db.close()
    log.info("analysis stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
