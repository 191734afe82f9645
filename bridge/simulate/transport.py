"""How the simulated caller reaches the bridge: a websocket, or raw TCP for AudioSocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Protocol
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from bridge.simulate.carriers.base import CallerWire, Frame

__all__ = ["TcpTransport", "Transport", "open_transport"]

TCP_READ_BYTES = 4096


class Transport(Protocol):
    @property
    def close_code(self) -> int | None: ...

    async def send(self, frame: Frame) -> None: ...

    def __aiter__(self) -> AsyncIterator[str | bytes]: ...

    async def close(self) -> None: ...


class TcpTransport:
    """A TCP stream as a transport: reads come as they arrive (the wire does the framing)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.close_code: int | None = None

    async def send(self, frame: Frame) -> None:
        if isinstance(frame, str):
            raise TypeError("a TCP carrier sends bytes only")
        self._writer.write(frame)
        await self._writer.drain()

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        while data := await self._reader.read(TCP_READ_BYTES):
            yield data

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


async def open_transport(
    url: str, wire: CallerWire, *, headers: Mapping[str, str], open_timeout: float
) -> Transport:
    """Connect to ``url`` (``ws://``/``wss://``, or ``tcp://host:port`` for a TCP wire)."""
    if wire.transport == "tcp":
        parts = urlsplit(url)
        if parts.scheme != "tcp" or parts.hostname is None or parts.port is None:
            raise OSError(f"a TCP carrier needs a tcp://host:port address, not {url!r}")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port), open_timeout
        )
        return TcpTransport(reader, writer)
    return await connect(
        url,
        additional_headers=dict(headers),
        open_timeout=open_timeout,
        subprotocols=[Subprotocol(p) for p in wire.subprotocols] or None,
    )
