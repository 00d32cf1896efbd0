"""A local Coinbase Exchange feed (ticker, heartbeat, matches) and its REST trade history.

Tests and demos connect here since the live endpoint is out of reach:

    config = SimulatorConfig(products=("BTC-USD",), rate=200, count=500, seed=1)
    with SimulatorThread(config) as sim:
        ...connect to sim.url, subscribe, read...
        sim.wait_until(lambda s: s.done())
        sim.sent_tickers()  # every ticker the market generated, once (the ground truth)
        sim.delivered_tickers()  # those at least one connection received
        sim.trades()  # every trade made, per product, trade ids contiguous (Trade records)
        sim.delivered_trade_ids()  # trades whose match / last_match reached a connection
        ...GET sim.rest_url + "/products/BTC-USD/trades?after=...&limit=..."...
        sim.rest_counts()  # {"requests", "ok", "throttled", "faulted", "rejected"}

Each trade ticker is the last of a batch of 1..4 trades; subscribing to `matches`
sends one `last_match` per product (its newest trade), then a `match` per trade.
REST is served on the feed's port (rest.py has the contract).

Run standalone with `python -m simulator --port 8765` (see --help).
"""

from .config import DEFAULT_PRODUCTS, REST_FAULT_KINDS, SimulatorConfig
from .faults import MALFORMED_KINDS, UNKNOWN_PRODUCT
from .frames import SNAPSHOT_KEYS, TICKER_KEYS
from .rest import MAX_LIMIT, RestRequest
from .server import Simulator
from .thread import SimulatorThread
from .trades import MATCH_KEYS, REST_KEYS, Trade

__all__ = [
    "DEFAULT_PRODUCTS",
    "MALFORMED_KINDS",
    "MATCH_KEYS",
    "MAX_LIMIT",
    "REST_FAULT_KINDS",
    "REST_KEYS",
    "SNAPSHOT_KEYS",
    "TICKER_KEYS",
    "UNKNOWN_PRODUCT",
    "RestRequest",
    "Simulator",
    "SimulatorConfig",
    "SimulatorThread",
    "Trade",
]
