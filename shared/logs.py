"""structlog set-up: JSON lines in containers, readable console output on a terminal."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import structlog


def configure_logging(log_format: str = "auto", level: str = "INFO") -> None:
    """Configure structlog once per process; `auto` picks console on a TTY, JSON otherwise."""
    use_console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str, **context: Any) -> Any:
    """A logger bound to `name` and any context (e.g. product=...) for every line it writes.

    Stays lazy, so module-level loggers pick up `configure_logging` called later.
    """
    return structlog.get_logger(logger_name=name, **context)


class RepeatedErrors:
    """Repeated errors as one line per kind per `interval_s`, with how many there were: a
    burst of failures (every tick of a deleted topic, say) must not become a line each."""

    def __init__(self, log: Any, event: str, interval_s: float = 5.0, level: str = "error") -> None:
        self._log = log
        self._level = level  # "warning" for events handled as they should be
        self._event = event
        self._interval_s = interval_s
        self._counts: dict[str, int] = {}  # kind -> errors not logged yet
        self._logged_at: dict[str, float] = {}
        self._lock = threading.Lock()  # delivery callbacks and the flush run on two threads

    def add(self, kind: str, **fields: Any) -> None:
        now = time.monotonic()
        with self._lock:
            count = self._counts.get(kind, 0) + 1
            if now - self._logged_at.get(kind, float("-inf")) < self._interval_s:
                self._counts[kind] = count
                return
            self._counts[kind], self._logged_at[kind] = 0, now
        getattr(self._log, self._level)(self._event, kind=kind, count=count, **fields)

    def flush(self) -> None:
        """Log what the last interval held back (at shutdown)."""
        with self._lock:
            held, self._counts = self._counts, {}
        for kind, count in held.items():
            if count:
                getattr(self._log, self._level)(self._event, kind=kind, count=count)
