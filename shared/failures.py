"""Exit codes and the failures that end a service: one table for every command.

A failure that retrying cannot fix ends the process within seconds with one structured log
line, one plain line on stderr that names it, and the exit code below; never a traceback.
Each command's `main` runs its body through `run_command`, which turns a `Fatal` raised
anywhere on the main thread into exactly that (threads hand theirs to the main thread).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import IntEnum

import structlog

from shared.logs import get_logger

log = get_logger(__name__)


class ExitCode(IntEnum):
    OK = 0  # clean stop (SIGTERM/SIGINT), or the job done
    FAILED = 1  # a failure at run time that retrying cannot fix
    CANNOT_START = 2  # a setting, the table, the topic, privileges, a port taken
    UNDELIVERED = 3  # ticks not delivered to Kafka at shutdown


EXIT_CODES_HELP = """\
exit codes (the same for every command of this project):
  0  clean stop (SIGTERM/SIGINT), or the job done
  1  a failure at run time that retrying cannot fix (privileges lost, table gone, topic gone)
  2  cannot start: a setting, the table, the topic, privileges, a port taken
  3  ticks not delivered to Kafka at shutdown (the count is in the last line)"""


class Fatal(Exception):
    """A failure that retrying cannot fix: the service stops with `code` and one line."""

    code = ExitCode.FAILED

    def __init__(self, message: str, code: ExitCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class CannotStart(Fatal):
    """A setting, the table, the topic, privileges or a port stop the service at start-up."""

    code = ExitCode.CANNOT_START


def report(command: str, failure: Fatal) -> int:
    """One structured line for the log pipeline (once logging is set up), then one plain line
    for a person, last; returns the exit code."""
    if structlog.is_configured():
        log.error("fatal", command=command, error=str(failure), exit_code=int(failure.code))
    print(failure, file=sys.stderr, flush=True)
    return int(failure.code)


def run_command(command: str, body: Callable[[], int]) -> int:
    """Run a command's body; a `Fatal` becomes its line and exit code, never a traceback."""
    try:
        return body()
    except Fatal as failure:
        return report(command, failure)
