"""Running a Simulator on its own event loop in a daemon thread (for sync tests)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .config import SimulatorConfig
from .rest import RestRequest
from .server import Simulator
from .trades import Trade


class SimulatorThread:
    """A Simulator serving from a background thread.

    Usable as a context manager. The accessors delegate to the Simulator,
    whose data is guarded by a lock: they return copies and are safe to call
    from the test's thread.
    """

    def __init__(
        self, config: SimulatorConfig | None = None, *, start_timeout: float = 10.0
    ) -> None:
        self.simulator = Simulator(config)
        self._start_timeout = start_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def config(self) -> SimulatorConfig:
        return self.simulator.config

    def start(self) -> SimulatorThread:
        """Start serving; returns once the port is bound (or raises why not)."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="coinbase-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise TimeoutError("simulator did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self.simulator.start()
        except BaseException as exc:  # e.g. port in use: re-raised in start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.simulator.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Close all connections (1001) and the server, and join the thread."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- delegated accessors -----------------------------------------------

    @property
    def port(self) -> int:
        return self.simulator.port

    @property
    def url(self) -> str:
        return self.simulator.url

    @property
    def rest_url(self) -> str:
        return self.simulator.rest_url

    @property
    def connections(self) -> int:
        return self.simulator.connections

    def sent_tickers(self) -> dict[str, list[bytes]]:
        return self.simulator.sent_tickers()

    def delivered_tickers(self) -> dict[str, list[bytes]]:
        return self.simulator.delivered_tickers()

    def ticker_counts(self) -> dict[str, int]:
        return self.simulator.ticker_counts()

    def sent_malformed(self) -> list[bytes]:
        return self.simulator.sent_malformed()

    def subscribe_messages(self) -> list[dict[str, Any]]:
        return self.simulator.subscribe_messages()

    def trades(self) -> dict[str, list[Trade]]:
        return self.simulator.trades()

    def trade_counts(self) -> dict[str, int]:
        return self.simulator.trade_counts()

    def delivered_trade_ids(self) -> dict[str, list[int]]:
        return self.simulator.delivered_trade_ids()

    def rest_counts(self) -> dict[str, int]:
        return self.simulator.rest_counts()

    def rest_requests(self) -> list[RestRequest]:
        return self.simulator.rest_requests()

    def done(self) -> bool:
        return self.simulator.done()

    def wait_until(
        self,
        predicate: Callable[[SimulatorThread], object],
        timeout: float = 10.0,
        interval: float = 0.01,
    ) -> bool:
        """Poll `predicate(self)` until it is truthy; False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
