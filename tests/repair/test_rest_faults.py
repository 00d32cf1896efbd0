"""REST that throttles, misbehaves or answers more than was asked: repair slows down, retries,
reports, and never publishes a trade twice."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from ops.pipeline import Pipeline
from simulator import REST_FAULT_KINDS
from tests.factories import fatal_line

from .harness import market, published_ids, run_repair, store_except, summary

pytestmark = pytest.mark.timeout(90)
# How repair names each simulator fault in its summary and metrics.
RETRIED_AS = {
    "html": "not_json",
    "truncated_json": "invalid_json",
    "wrong_types": "wrong_types",
    "server_error": "server_error",
}


def test_429_slows_repair_down_and_it_completes(tape: Pipeline) -> None:
    # Twelve holes, one request each, against a simulator that allows 5 requests/s.
    holes = {p: [(i * 20, i * 20 + 4) for i in range(1, 5)] for p in tape.products}
    with market(count=200, rest_rate=5, rest_burst=1) as sim:
        missing = store_except(tape, sim, holes)
        started = time.monotonic()
        result = summary(run_repair(tape, sim.rest_url))
        took = time.monotonic() - started
        counts = sim.rest_counts()
    assert result["trades_fetched"] == 60 and result["throttled_429"] == counts["throttled"] > 0
    assert counts["ok"] == 12 and took >= 11 / 5
    assert {p: sorted(ids) for p, ids in published_ids(tape).items()} == {
        p: sorted(ids) for p, ids in missing.items()
    }


@pytest.mark.parametrize("kind", REST_FAULT_KINDS)
def test_a_bad_body_is_retried(tape: Pipeline, kind: str) -> None:
    # Every other request answers the fault: the second page is fetched on the second try.
    with market(count=1200, rest_fault_share=0.5, rest_fault_kinds=(kind,)) as sim:
        missing = store_except(tape, sim, {"BTC-USD": [(50, 1249)]})
        result = summary(run_repair(tape, sim.rest_url))
        assert sim.rest_counts()["faulted"] == 1
    assert result["trades_fetched"] == 1200 and result["requests"] == 3
    assert result["retried"] == {RETRIED_AS[kind]: 1}
    ids = published_ids(tape)["BTC-USD"]
    assert len(ids) == len(set(ids)) and set(ids) == missing["BTC-USD"]


@pytest.mark.parametrize("kind", REST_FAULT_KINDS)
def test_a_body_bad_for_good_ends_with_one_line(tape: Pipeline, kind: str) -> None:
    with market(count=100, rest_fault_share=1.0, rest_fault_kinds=(kind,)) as sim:
        store_except(tape, sim, {"BTC-USD": [(50, 59)]})
        result = run_repair(tape, sim.rest_url, REPAIR_REST_GIVE_UP_S="1.5")
        requests = sim.rest_counts()["requests"]
    assert result.returncode == 1, result.stderr
    line = fatal_line(result.stderr, 1)
    assert line.startswith("Coinbase REST failed for 1.5 s on /products/BTC-USD/trades"), line
    assert 2 <= requests <= 15, "backed off, not a tight loop"
    assert published_ids(tape)["BTC-USD"] == []


class _Shifting(BaseHTTPRequestHandler):
    """Forwards to the simulator with `limit` dropped and `after` moved 3 ids up: every page
    also carries trades above the hole and below it (stored ones)."""

    upstream = ""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items() if k != "limit"}
        if "after" in query:
            query["after"] = str(int(query["after"]) + 3)
        url = f"{self.upstream}{parts.path}?{urlencode(query)}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = answer.read()
            self.send_response(answer.status)
            for name in ("Content-Type", "CB-AFTER", "CB-BEFORE"):
                if answer.headers.get(name):
                    self.send_header(name, answer.headers[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def shifting_proxy(upstream: str) -> Iterator[str]:
    handler = type("Handler", (_Shifting,), {"upstream": upstream})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_pages_with_ids_outside_the_hole_publish_nothing_twice(tape: Pipeline) -> None:
    with market(count=2000) as sim, shifting_proxy(sim.rest_url) as url:
        missing = store_except(tape, sim, {"BTC-USD": [(300, 2299)], "ETH-BTC": [(40, 44)]})
        result = summary(run_repair(tape, url))
    assert result["trades_fetched"] == 2005
    ids = published_ids(tape)
    for product in tape.products:
        assert len(ids[product]) == len(set(ids[product])), "published twice"
        assert set(ids[product]) == missing[product]
