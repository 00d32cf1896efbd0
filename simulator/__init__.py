"""A local Coinbase Exchange WebSocket feed (ticker + heartbeat channels).

Tests and demos connect here since the live endpoint is out of reach:

    config = SimulatorConfig(products=("BTC-USD",), rate=200, count=500, seed=1)
    with SimulatorThread(config) as sim:
        ...connect to sim.url, subscribe, read...
        sim.wait_until(lambda s: s.done())
        sim.sent_tickers()  # every ticker the market generated, once (the ground truth)
        sim.delivered_tickers()  # those at least one connection received

Run standalone with `python -m simulator --port 8765` (see --help).
"""

from .config import DEFAULT_PRODUCTS, SimulatorConfig
from .faults import MALFORMED_KINDS, UNKNOWN_PRODUCT
from .frames import SNAPSHOT_KEYS, TICKER_KEYS
from .server import Simulator
from .thread import SimulatorThread

__all__ = [
    "DEFAULT_PRODUCTS",
    "MALFORMED_KINDS",
    "SNAPSHOT_KEYS",
    "TICKER_KEYS",
    "UNKNOWN_PRODUCT",
    "Simulator",
    "SimulatorConfig",
    "SimulatorThread",
]
