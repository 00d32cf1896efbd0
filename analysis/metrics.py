"""Prometheus metrics of the HTTP API, by route template (bounded label values)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("analysis_requests_total", "HTTP requests answered", ["route", "status"])
SECONDS = Histogram(
    "analysis_request_seconds",
    "time to answer, by route",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class MetricsMiddleware:
    """Plain ASGI (no per-request task, unlike BaseHTTPMiddleware): counts and times requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = route_name(scope)
            REQUESTS.labels(route, str(status[0])).inc()
            SECONDS.labels(route).observe(time.perf_counter() - started)


def route_name(scope: dict[str, Any] | Scope) -> str:
    """The matched route's template (/products/{product_id}/ticker), else "unmatched"."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
