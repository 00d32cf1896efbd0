"""python -m analysis: the read-only HTTP API and chart page over `order` and `trade`, until
SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import socket
import sys

import pymysql
import uvicorn

from analysis.app import create_app
from analysis.db import Database, link_broken
from analysis.settings import AnalysisSettings
from shared.failures import EXIT_CODES_HELP, CannotStart, run_command
from shared.logs import configure_logging, get_logger
from shared.observability import port_taken
from shared.settings import load

USAGE = """\
Serves GET /products, /products/{id}/candles|ticker|stats, /trades/largest, /coverage,
/products/{id}/trades?limit=&before=&after= (the trade tape, Coinbase's pages and cursors),
/products/{id}/completeness?start=&end= (holes in the tape by trade id), /healthz,
/metrics, /docs (OpenAPI) and / (live charts) on ANALYSIS_HOST:ANALYSIS_PORT. Candles come
from the trade tape where it holds every trade of the bucket, from the ticks elsewhere.

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

"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description=__doc__,
        epilog=USAGE + "\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    return run_command("analysis", serve)


def serve() -> int:
    """Check the settings, the database and the port, then serve until SIGTERM/SIGINT."""
    settings = load(AnalysisSettings)
    configure_logging(settings.log_format, settings.log_level)
    log = get_logger("analysis")
    db = Database(settings)
    try:
        check_database(settings, db)
        listener = listen(settings.analysis_host, settings.analysis_port)
    except CannotStart:
        db.close()
        raise
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the
    # handler that was there before it: make that a no-op, so a requested stop exits 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    log.info("analysis listening", url=f"http://{settings.analysis_host}:{settings.analysis_port}/")
    config = uvicorn.Config(
        create_app(settings, db),
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
        # Longer than a load balancer's idle timeout (ALB: 60 s), so the balancer, not
        # the app, closes idle keep-alive connections (no 502 on a reused connection).
        timeout_keep_alive=75,
    )
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()
        db.close()
    log.info("analysis stopped")
    return 0


def check_database(settings: AnalysisSettings, db: Database) -> None:
    """The database answers and has `order`; a missing index is only a warning (indexes.py)."""
    try:
        db.check_indexes()
    except (pymysql.err.MySQLError, OSError) as exc:
        reason = exc.args[-1] if exc.args else exc
        unreachable = not isinstance(exc, pymysql.err.MySQLError) or link_broken(exc)
        raise CannotStart(
            f"analysis cannot start: database {settings.mysql_host}:{settings.mysql_port} "
            f"{'did not answer' if unreachable else 'refused'}: {reason}"
        ) from None


def listen(host: str, port: int) -> socket.socket:
    """Bind the HTTP port here rather than in uvicorn, so a taken port is the one line every
    service prints (exit 2), not uvicorn's log record."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    # As uvicorn does: a port left in TIME_WAIT by the last run is free to bind.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        raise CannotStart(port_taken(port, "ANALYSIS_PORT", exc)) from None
    return listener


if __name__ == "__main__":
    sys.exit(main())
