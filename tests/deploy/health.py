"""Run a health-check snippet from a deployment file against a real /healthz."""

from __future__ import annotations

import subprocess
import sys
from http.server import ThreadingHTTPServer

from shared.observability import serve
from tests.factories import free_port


def snippet_exit_code(snippet: str, healthy: bool, env_name: str | None = None) -> int:
    """Exit code of `python -c snippet` with the port as {port} in it, or in env_name."""
    port = free_port()
    server = serve(port, lambda: (healthy, {}), setting="TEST_PORT", host="127.0.0.1")
    assert isinstance(server, ThreadingHTTPServer)
    try:
        code = snippet if env_name else snippet.replace("{port}", str(port))
        env = {env_name: str(port)} if env_name else {}
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, timeout=30
        ).returncode
    finally:
        server.shutdown()
        server.server_close()
