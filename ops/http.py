"""One HTTP GET for tests, drills and benchmarks: what a service's /healthz, /metrics or
API page answered, without raising for an error status or a server that is not up yet."""

from __future__ import annotations

import time
import urllib.error
import urllib.request


def http_get(url: str, timeout_s: float = 2) -> tuple[int, bytes]:
    """The status and body at `url`; an HTTP error answers with its own, no answer is 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, bytes(error.read())
    except OSError:
        return 0, b""


def wait_for_answer(url: str, timeout_s: float = 30) -> bytes:
    """The body at `url` once its server answers at all (any status)."""
    deadline = time.monotonic() + timeout_s
    while (answer := http_get(url, timeout_s=5))[0] == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing answered at {url} in {timeout_s:g} s")
        time.sleep(0.1)
    return answer[1]
