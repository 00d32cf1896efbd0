"""The two modes: `run_once` (repair the holes there are now, then exit) and `follow` (keep
the tape complete up to the exchange's newest trade until SIGTERM)."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import deque
from datetime import datetime
from typing import Any

import pymysql

from repair import metrics
from repair.holes import Hole, Tape, permanent
from repair.publish import TradePublisher
from repair.repairer import Repairer
from repair.rest import RestClient, RestGone, RestRefused, Stopped
from repair.settings import RepairSettings
from shared.failures import Fatal
from shared.logs import RepeatedErrors, get_logger
from shared.observability import serve

log = get_logger(__name__)

WAIT_STEP_S = 0.5


def make_repairer(settings: RepairSettings, stop: threading.Event) -> Repairer:
    rest = RestClient(
        settings.coinbase_rest_url,
        settings.repair_rest_rate,
        settings.repair_rest_timeout_s,
        settings.repair_rest_give_up_s,
        stop,
    )
    publisher = TradePublisher(settings, settings.repair_delivery_timeout_s)
    return Repairer(Tape(settings.mysql_connect_args()), rest, publisher)


def run_once(settings: RepairSettings, products: tuple[str, ...], since: datetime | None) -> int:
    """Repair every hole between the first stored trade (at or after `since`) and the last;
    then wait up to REPAIR_WAIT_S for `trade` to show them closed. Prints the summary."""
    stop = threading.Event()
    _stop_on_signals(stop)
    started = time.monotonic()
    repairer = make_repairer(settings, stop)
    ranges: dict[str, tuple[int, int]] = {}
    try:
        for product in products:
            start, end = repairer.tape.start(product, since), repairer.tape.bounds(product)[1]
            if start is None or end is None:
                continue
            ranges[product] = (start, end)
            repairer.repair(product, repairer.open_holes(product, start, end))
        verified = _wait_closed(settings, repairer, ranges, stop)
    except Stopped:
        verified = False
    except pymysql.err.MySQLError as exc:
        raise Fatal(f"repair failed: the database refused or went away: {exc}") from None
    finally:
        _close(repairer)
    summary = repairer.report(started) | {"verified_in_table": verified, "stopped": stop.is_set()}
    log.info("repair done", **summary)
    print(json.dumps(summary), flush=True)
    if repairer.summary.unavailable and not stop.is_set():
        raise Fatal(f"{repairer.summary.unavailable} missing trades are not served by REST")
    return 0


def _wait_closed(
    settings: RepairSettings,
    repairer: Repairer,
    ranges: dict[str, tuple[int, int]],
    stop: threading.Event,
) -> bool:
    """True once `trade` shows no hole left in the ranges (the consumer wrote what was
    published); False without looking when REPAIR_WAIT_S is 0; Fatal after the wait."""
    if settings.repair_wait_s == 0 or not repairer.summary.holes:
        return not repairer.summary.holes
    deadline = time.monotonic() + settings.repair_wait_s
    while True:
        left = {
            product: holes
            for product, (start, end) in ranges.items()
            if (holes := _unexplained(repairer, product, start, end))
        }
        if not left:
            return True
        if time.monotonic() >= deadline:
            raise Fatal(
                f"published {repairer.summary.fetched} trades (Kafka acknowledged them) but "
                f"`trade` still shows holes after {settings.repair_wait_s:g} s: is the consumer "
                f"running? {json.dumps({p: h[:5] for p, h in left.items()})}"
            )
        if stop.wait(WAIT_STEP_S):
            raise Stopped


def _unexplained(repairer: Repairer, product: str, start: int, end: int) -> list[Hole]:
    """Holes still in the table, minus those the exchange did not serve."""
    unavailable = repairer.unavailable.get(product)
    holes = repairer.open_holes(product, start, end)
    return [h for h in holes if unavailable is None or h.first not in unavailable]


class Follower:
    """Each pass: the exchange's newest trade id per product (remembered, so only ids it had
    REPAIR_SETTLE_S ago count), the table's holes up to there, and their repair."""

    def __init__(
        self, settings: RepairSettings, products: tuple[str, ...], since: datetime | None
    ) -> None:
        self.settings = settings
        self.products = products
        self.since = since
        self.stop = threading.Event()
        self.repairer = make_repairer(settings, self.stop)
        self.newest: dict[str, deque[tuple[float, int]]] = {p: deque() for p in products}
        self.watermark: dict[str, int] = {}  # every id up to here was stored at some pass
        self.started = self.last_pass_at = time.monotonic()
        self.last_error: str | None = None
        self.open: dict[str, int] = {}
        self._errors = RepeatedErrors(log, "repair pass failed; trying again", interval_s=60)

    def run(self) -> int:
        _stop_on_signals(self.stop)
        serve(self.settings.repair_metrics_port, self.health, "REPAIR_METRICS_PORT")
        log.info("repair following", products=self.products, poll_s=self.settings.repair_poll_s)
        try:
            while not self.stop.is_set():
                self.pass_once()
                self.stop.wait(self.settings.repair_poll_s)
        finally:
            _close(self.repairer)
        log.info("repair stopped", **self.repairer.report(self.started))
        return 0

    def pass_once(self) -> None:
        try:
            for product in self.products:
                self._product(product)
            self.last_error = None
            self.last_pass_at = time.monotonic()
            metrics.LAST_PASS.set_to_current_time()
        except Stopped:
            return
        except RestRefused:  # a 4xx: retrying cannot fix it
            raise
        except RestGone as exc:
            self._failed(exc)
        except pymysql.err.MySQLError as exc:
            if permanent(exc):
                raise Fatal(f"repair cannot read `trade`: {exc}") from None
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.last_error = str(exc)
        self._errors.add(type(exc).__name__, error=str(exc))

    def _product(self, product: str) -> None:
        tape, settle_s = self.repairer.tape, self.settings.repair_settle_s
        start = self.watermark.get(product)
        if start is None:
            start = tape.start(product, self.since)
            if start is None:  # nothing stored: the tape starts with the producer
                return
        found = tape.holes(product, start)
        last = tape.bounds(product)[1] or start
        holes = [hole for hole, age in found if age >= settle_s]
        bound = self._exchange_bound(product)
        if bound is not None and bound > last:
            holes.append(Hole(last + 1, bound))
        self.watermark[product] = found[0][0].first - 1 if found else last
        self.open[product] = len(found)
        metrics.HOLES_OPEN.labels(product=product).set(len(found))
        metrics.MISSING.labels(product=product).set(sum(hole.size for hole, _ in found))
        self.repairer.repair(product, holes)

    def _exchange_bound(self, product: str) -> int | None:
        """The exchange's newest trade id as of REPAIR_SETTLE_S ago (None: not known yet)."""
        now, settle_s = time.monotonic(), self.settings.repair_settle_s
        newest = self.repairer.rest.newest(product)
        seen = self.newest[product]
        if newest is not None:
            seen.append((now, newest))
        while len(seen) > 1 and now - seen[1][0] >= settle_s:
            seen.popleft()
        return seen[0][1] if seen and now - seen[0][0] >= settle_s else None

    def health(self) -> tuple[bool, dict[str, Any]]:
        since_pass = time.monotonic() - self.last_pass_at
        limit = 3 * self.settings.repair_poll_s + self.settings.repair_rest_give_up_s
        return since_pass < limit, {
            "seconds_since_pass": round(since_pass, 1),
            "holes_open": self.open,
            "last_error": self.last_error,
            **self.repairer.report(self.started),
        }


def _close(repairer: Repairer) -> None:
    """What was published before a stop still reaches Kafka; then the connections close."""
    left = repairer.publisher.close()
    if left:
        log.warning("trades not acknowledged at stop; a later run fetches them again", count=left)
    repairer.rest.close()
    repairer.tape.close()


def _stop_on_signals(stop: threading.Event) -> None:
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stop.set())


def follow(settings: RepairSettings, products: tuple[str, ...], since: datetime | None) -> int:
    return Follower(settings, products, since).run()
