"""Command line: `python -m simulator --port 8765 [options]`; runs until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from shared.failures import EXIT_CODES_HELP, CannotStart, run_command
from shared.observability import port_taken

from .config import DEFAULT_PRODUCTS, REST_FAULT_KINDS, DropCode, SimulatorConfig
from .server import Simulator

log = logging.getLogger("simulator")


def _drop_code(text: str) -> DropCode:
    if text == "abort":
        return "abort"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a close code or 'abort'") from None


def _products(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _fault_kinds(text: str) -> tuple[str, ...]:
    kinds = _products(text)
    if not kinds or set(kinds) - set(REST_FAULT_KINDS):
        raise argparse.ArgumentTypeError(f"expected some of {','.join(REST_FAULT_KINDS)}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Local Coinbase Exchange WebSocket feed (ticker, heartbeat, matches) and its\n"
        "REST trade history. It broadcasts like Coinbase: every connection subscribed to a\n"
        "product gets each of its ticks; a connection that is down misses them. Each ticker\n"
        "closes a batch of 1..4 trades (trade ids +1 each), sent on `matches`; every trade is\n"
        "served at http://HOST:PORT/products/{id}/trades (same port: plain HTTP GET), newest\n"
        "first, with Coinbase's before/after/limit cursors and CB-BEFORE/CB-AFTER headers.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8765, help="0 picks a free port")
    add("--products", type=_products, default=DEFAULT_PRODUCTS, help="comma-separated")
    add("--rate", type=float, default=10.0, help="tickers/s per product, 0 = unlimited")
    add("--seed", type=int, default=None)
    add("--count", type=int, default=None, help="trade ticks per product, then heartbeats only")
    add("--no-snapshot", dest="snapshot", action="store_false", help="no snapshot ticker")
    add("--snapshot-without-sequence", action="store_true")
    add("--subscribe-timeout", type=float, default=5.0)
    add("--replay-file", default=None, help="JSON-lines capture to replay verbatim")
    add("--drop-after-messages", type=int, default=None)
    add("--drop-after-seconds", type=float, default=None)
    add("--drop-code", type=_drop_code, default=1000, help="1000, 1001, 1011 or 'abort'")
    add("--stall-after-messages", type=int, default=None)
    add("--stall-seconds", type=float, default=10.0)
    add("--malformed-every", type=int, default=None)
    add("--error-after-messages", type=int, default=None)
    add("--out-of-order-every", type=int, default=None, help="hold every Nth tick back by one")
    add("--sequence-reset-after", type=int, default=None, help="sequence jumps back after N ticks")
    add("--stray-sequence-after", type=int, default=None, help="one tick with sequence 9e11")
    add("--drop-one-every", type=float, default=None, help="drop the oldest connection every T s")
    add("--autostart", action="store_true",
        help="trade from the start, not from the first subscription")  # fmt: skip
    add("--trade-history", type=int, default=250_000, help="trades kept per product for REST")
    add("--rest-rate", type=float, default=10.0, help="REST requests/s before 429, 0 = no limit")
    add("--rest-burst", type=int, default=15, help="REST requests allowed at once")
    faults = ",".join(REST_FAULT_KINDS)
    add("--rest-fault-share", type=float, default=0.0, help="share of REST trade requests"
        " answered with a fault instead (0..1, evenly spread: 0.25 = every 4th)")  # fmt: skip
    add("--rest-faults", type=_fault_kinds, default=REST_FAULT_KINDS,
        help=f"REST fault kinds, cycled (default {faults})")  # fmt: skip
    add("--compression", action="store_true", help="offer permessage-deflate")
    add("--record", action="store_true",
        help="keep sent tickers, delivered trade ids, REST requests (grows forever)")  # fmt: skip
    add("--log-level", default="INFO")
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        products=args.products,
        rate=args.rate,
        seed=args.seed,
        count=args.count,
        snapshot=args.snapshot,
        snapshot_without_sequence=args.snapshot_without_sequence,
        subscribe_timeout=args.subscribe_timeout,
        replay_file=args.replay_file,
        drop_after_messages=args.drop_after_messages,
        drop_after_seconds=args.drop_after_seconds,
        drop_code=args.drop_code,
        stall_after_messages=args.stall_after_messages,
        stall_seconds=args.stall_seconds,
        malformed_every=args.malformed_every,
        error_after_messages=args.error_after_messages,
        out_of_order_every=args.out_of_order_every,
        sequence_reset_after=args.sequence_reset_after,
        stray_sequence_after=args.stray_sequence_after,
        drop_one_every=args.drop_one_every,
        autostart=args.autostart,
        trade_history=args.trade_history,
        rest_rate=args.rest_rate,
        rest_burst=args.rest_burst,
        rest_fault_share=args.rest_fault_share,
        rest_fault_kinds=args.rest_faults,
        compression=args.compression,
        record=args.record,
    )


async def run(config: SimulatorConfig) -> None:
    """Serve until SIGINT or SIGTERM, then close every connection (1001)."""
    simulator = Simulator(config)
    try:
        await simulator.start()
    except OSError as exc:
        raise CannotStart(port_taken(config.port, "--port", exc)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("simulator listening on %s (REST %s)", simulator.url, simulator.rest_url)
    await stop.wait()
    await simulator.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=args.log_level.upper(), format="%(message)s", stream=sys.stderr)
    # websockets logs its own "server listening" and handshake noise at INFO.
    logging.getLogger("websockets").setLevel(logging.WARNING)

    def body() -> int:
        asyncio.run(run(config))
        return 0

    return run_command("simulator", body)


if __name__ == "__main__":
    sys.exit(main())
