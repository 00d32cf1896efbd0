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

from .config import DEFAULT_PRODUCTS, DropCode, SimulatorConfig
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Local Coinbase Exchange WebSocket feed (ticker + heartbeat). It broadcasts\n"
        "like Coinbase: every connection subscribed to a product gets each of its ticks;\n"
        "a connection that is down misses them.",
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
    add("--compression", action="store_true", help="offer permessage-deflate")
    add("--record", action="store_true", help="keep sent tickers in memory (grows forever)")
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
    log.info("simulator listening on %s", simulator.url)
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
