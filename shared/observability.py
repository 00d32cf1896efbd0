"""One small HTTP server per service: Prometheus metrics on /metrics, health on /healthz."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.failures import CannotStart

# Returns (healthy, details); details are shown as JSON.
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


def port_taken(port: int, setting: str, error: OSError) -> str:
    """The one line every service prints when it cannot listen."""
    reason = os.strerror(error.errno) if error.errno else str(error)  # not asyncio's wrapping
    return f"port {port} is taken (set {setting}): {reason}"


def serve(
    port: int, health: HealthCheck, setting: str, host: str = "0.0.0.0"
) -> ThreadingHTTPServer | None:
    """Serve /metrics and /healthz on `port` in a daemon thread; port 0 disables it.

    A port already in use stops the service (CannotStart, exit 2) with one line naming
    `setting`: a second instance must not run unobserved, nor have its health probe answered
    by the first.
    """
    if port == 0:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                health()  # it sets the stall gauges: current at every scrape
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest())
            elif self.path in ("/healthz", "/health"):
                healthy, details = health()
                body = orjson.dumps({"healthy": healthy, **details}, default=str)
                self._reply(200 if healthy else 503, "application/json", body)
            else:
                self._reply(404, "text/plain", b"not found\n")

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
            return

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise CannotStart(port_taken(port, setting, exc)) from None
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
