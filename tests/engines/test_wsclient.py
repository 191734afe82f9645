"""The lean engine websocket client against a real websockets server on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake
from websockets.http11 import Response

from bridge.engines.wsclient import lean_connect

Handler = Callable[[ServerConnection], Awaitable[None]]
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@asynccontextmanager
async def server(handler: Handler, **kw: Any) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, **kw) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/realtime?model=m"


async def test_round_trip_headers_and_clean_close() -> None:
    seen: dict[str, Any] = {}

    async def echo(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen["auth"] = ws.request.headers.get("Authorization")
        seen["path"] = ws.request.path
        async for message in ws:
            await ws.send(f"echo:{message}")

    async with server(echo) as url:
        ws = await lean_connect(url, headers={"Authorization": "Bearer sk-test"})
        await ws.send("hello")
        assert await ws.recv() == "echo:hello"
        await ws.close()
    assert seen == {"auth": "Bearer sk-test", "path": "/v1/realtime?model=m"}
    assert ws.close_code == 1000
    assert await ws.recv() is None


async def test_fragmented_and_binary_messages_are_reassembled() -> None:
    async def fragments(ws: ServerConnection) -> None:
        await ws.send(iter(["par", "tial ", "text"]))
        await ws.send(b"\x00\x01")
        await ws.wait_closed()

    async with server(fragments) as url:
        ws = await lean_connect(url)
        assert await ws.recv() == "partial text"
        assert await ws.recv() == b"\x00\x01"
        await ws.close()


async def test_server_close_code_and_reason_are_kept() -> None:
    async def die(ws: ServerConnection) -> None:
        await ws.close(1011, "upstream exploded")

    async with server(die) as url:
        ws = await lean_connect(url)
        assert await ws.recv() is None
    assert (ws.close_code, ws.close_reason) == (1011, "upstream exploded")


async def test_server_pings_are_answered() -> None:
    latency: list[float] = []

    async def pinger(ws: ServerConnection) -> None:
        pong = await ws.ping()
        latency.append(await asyncio.wait_for(pong, 2))
        await ws.close()

    async with server(pinger) as url:
        ws = await lean_connect(url)
        assert await ws.recv() is None
    assert len(latency) == 1


async def test_keepalive_aborts_a_peer_that_stopped_answering() -> None:
    """A peer that completed the handshake and then went silent (no pongs, no close)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        await done.wait()  # never reads, never answers
        writer.close()
        await writer.wait_closed()

    done = asyncio.Event()
    tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        ws = await lean_connect(f"ws://127.0.0.1:{port}/")
        keepalive = asyncio.create_task(ws.keepalive(interval_s=0.05, timeout_s=0.2))
        async with asyncio.timeout(3):
            assert await ws.recv() is None
        await keepalive
        assert ws.close_code == 1006
    finally:
        done.set()
        tcp.close()
        await tcp.wait_closed()


async def test_refused_handshake_raises_invalid_handshake() -> None:
    def refuse(connection: ServerConnection, request: object) -> Response:
        return Response(500, "Internal Server Error", Headers(), b"nope")

    async def never(ws: ServerConnection) -> None:  # pragma: no cover - never reached
        pass

    async with server(never, process_request=refuse) as url:
        with pytest.raises(InvalidHandshake, match="500"):
            await lean_connect(url)


async def test_nothing_listening_raises_oserror() -> None:
    with pytest.raises(ConnectionRefusedError):
        await lean_connect("ws://127.0.0.1:9/")


async def test_send_after_close_raises_connection_error() -> None:
    async def die(ws: ServerConnection) -> None:
        await ws.close()

    async with server(die) as url:
        ws = await lean_connect(url)
        assert await ws.recv() is None
        with pytest.raises(ConnectionError):
            await ws.send("late")
