"""The feed's read path against a real WebSocket server: messages as sent, and why a session ended.

Each test serves one scripted session per connect (websockets' own server on a real socket)
and runs one feed connection until the script is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.server import ServerConnection, serve

from producer.feed import Feed, FeedState
from producer.settings import ProducerSettings

Script = Callable[[ServerConnection], Awaitable[None]]


def run_feed(
    scripts: list[Script], answer: Callable[[bytes], bool] = lambda frame: True, **settings: object
) -> list[bytes]:
    """Serve `scripts` (one per connect) to one feed connection; the frames it handed on."""
    received: list[bytes] = []

    async def main() -> None:
        done = asyncio.Event()

        async def handler(websocket: ServerConnection) -> None:
            await websocket.recv()  # the subscribe message
            script = scripts.pop(0)
            await script(websocket)
            if not scripts:
                done.set()
                await websocket.wait_closed()  # the last session stays open until the feed stops

        def on_frame(frame: bytes, received_ns: int, connection: str) -> bool:
            received.append(frame)
            return answer(frame)

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            config = ProducerSettings(
                coinbase_ws_url=f"ws://127.0.0.1:{port}",
                feed_connections=1,
                reconnect_min_s=0.01,
                reconnect_max_s=0.02,
                **settings,  # type: ignore[arg-type]
            )
            feed = Feed(config, on_frame, FeedState())
            running = asyncio.create_task(feed.run())
            scripted = asyncio.create_task(done.wait())
            await asyncio.wait((running, scripted), timeout=20, return_when="FIRST_COMPLETED")
            if running.done():  # the feed failed: its exception goes on
                scripted.cancel()
                running.result()
            await asyncio.sleep(0.2)
            feed.stop.set()
            await asyncio.wait_for(running, timeout=10)

    asyncio.run(main())
    return received


def reconnects(cause: str) -> float:
    found = REGISTRY.get_sample_value(
        "producer_reconnects_total", {"connection": "0", "cause": cause}
    )
    return found or 0.0


def test_fragmented_and_binary_messages_arrive_whole_and_in_order() -> None:
    async def script(websocket: ServerConnection) -> None:
        await websocket.send('{"type":"heartbeat"}')
        await websocket.send(['{"type":', '"ticker",', '"sequence":1}'])  # three fragments
        await websocket.send(b'{"type":"ticker","sequence":2}')

    assert run_feed([script]) == [
        b'{"type":"heartbeat"}',
        b'{"type":"ticker","sequence":1}',
        b'{"type":"ticker","sequence":2}',
    ]


def test_each_way_a_session_ends_is_counted_with_its_cause_and_reconnected() -> None:
    async def close_1011(websocket: ServerConnection) -> None:
        await websocket.send('{"type":"heartbeat"}')
        await websocket.close(1011, "internal error")

    async def error_frame(websocket: ServerConnection) -> None:
        await websocket.send('{"type":"error"}')
        await websocket.send('{"type":"after the error"}')  # not handed on: the session ended
        await asyncio.sleep(1)

    async def silent(websocket: ServerConnection) -> None:
        await websocket.send('{"type":"heartbeat"}')
        await asyncio.sleep(3)  # longer than feed_stale_after_s

    async def last(websocket: ServerConnection) -> None:
        await websocket.send('{"type":"last"}')

    before = {cause: reconnects(cause) for cause in ("close_1011", "error_frame", "stale")}
    frames = run_feed(
        [close_1011, error_frame, silent, last],
        answer=lambda frame: frame != b'{"type":"error"}',
        feed_stale_after_s=0.5,
    )
    assert frames == [
        b'{"type":"heartbeat"}',
        b'{"type":"error"}',
        b'{"type":"heartbeat"}',
        b'{"type":"last"}',
    ]
    for cause, count in before.items():
        assert reconnects(cause) == count + 1, cause


def test_a_failing_frame_handler_ends_the_feed_with_its_exception() -> None:
    async def script(websocket: ServerConnection) -> None:
        await websocket.send('{"type":"heartbeat"}')
        await websocket.wait_closed()

    def fail(frame: bytes) -> bool:
        raise RuntimeError("a bug in the dispatcher")

    with pytest.raises(RuntimeError, match="a bug in the dispatcher"):
        run_feed([script], answer=fail)


def test_a_2_mib_message_arrives_whole_on_the_same_session() -> None:
    big = '{"type":"ticker","memo":"' + "x" * 2 * 1024 * 1024 + '"}'

    async def script(websocket: ServerConnection) -> None:
        await websocket.send('{"type":"heartbeat"}')
        await websocket.send(big)
        await websocket.send('{"type":"after"}')

    before = reconnects("frame_over_limit")
    assert run_feed([script]) == [b'{"type":"heartbeat"}', big.encode(), b'{"type":"after"}']
    assert reconnects("frame_over_limit") == before


def test_a_message_over_the_limit_ends_the_session_counted_and_reconnects() -> None:
    async def too_big(websocket: ServerConnection) -> None:
        await websocket.send('{"type":"heartbeat"}')
        await websocket.send('{"type":"ticker","memo":"' + "x" * 70_000 + '"}')
        await websocket.wait_closed()

    async def last(websocket: ServerConnection) -> None:
        await websocket.send('{"type":"last"}')

    before = reconnects("frame_over_limit")
    frames = run_feed([too_big, last], feed_max_frame_bytes=65536)
    assert frames == [b'{"type":"heartbeat"}', b'{"type":"last"}']
    assert reconnects("frame_over_limit") == before + 1
