"""A lean websocket client for engine connections, on websockets' sans-I/O ``ClientProtocol``.

Why not ``websockets.asyncio.client``: its ``send()`` enters an async context manager and takes a
lock for every message, and its receive side goes through an assembler built for fragmented
messages and concurrent readers. An engine connection has one writer task at a time per message
(the event loop serialises them) and one reader, and sends ~50 small text messages a second per
call. Here a send is ``protocol.send_text`` + one ``transport.write``: no await unless the socket
pushes back. The protocol logic (handshake, framing, ping/pong, close) is websockets' own.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any, cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

__all__ = ["LeanWebSocket", "connect_engine", "lean_connect"]

_CLOSED = object()


class LeanWebSocket(asyncio.Protocol):
    """One client websocket connection. Create with :func:`lean_connect`."""

    def __init__(self, protocol: ClientProtocol, max_size: int) -> None:
        self._ws = protocol
        self._max_size = max_size
        self._transport: asyncio.Transport | None = None
        self._messages: asyncio.Queue[Any] = asyncio.Queue()
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._closed = asyncio.Event()
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._pong = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same API
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._ws.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._process()  # a response whose body ends at EOF completes only now
        return None

    def _process(self) -> None:
        ws = self._ws
        for event in ws.events_received():
            if isinstance(event, Response):
                self._on_response()
            elif isinstance(event, Frame):
                self._on_frame(event)
        self._flush()
        if ws.close_expected() and self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        rcvd = self._ws.close_rcvd
        self.close_code = rcvd.code if rcvd is not None else 1006
        self.close_reason = rcvd.reason if rcvd is not None else ""
        if not self._handshake.done():
            self._handshake.set_exception(exc or ConnectionError("connection closed in handshake"))
        self._messages.put_nowait(_CLOSED)
        self._can_write.set()
        self._closed.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- events ----------------------------------------------------------------------------

    def _on_response(self) -> None:
        if self._handshake.done():
            return
        if self._ws.handshake_exc is not None:
            self._handshake.set_exception(self._ws.handshake_exc)
        else:
            self._handshake.set_result(None)

    def _on_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT or frame.opcode is Opcode.BINARY:
            if frame.fin:
                data = bytes(frame.data)
                self._messages.put_nowait(data.decode() if frame.opcode is Opcode.TEXT else data)
            else:
                self._fragments = [bytes(frame.data)]
                self._fragment_text = frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = []
                self._messages.put_nowait(data.decode() if self._fragment_text else data)
        elif frame.opcode is Opcode.PONG:
            self._pong.set()
        # PING is answered by the protocol itself (the pong is in data_to_send); CLOSE likewise.

    def _flush(self) -> None:
        data = self._ws.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.writelines([chunk for chunk in data if chunk])

    # -- public API ------------------------------------------------------------------------

    async def send(self, text: str) -> None:
        """Send one text message. Awaits only when the socket pushes back."""
        if self._closed.is_set():
            raise ConnectionError("websocket is closed")
        self._ws.send_text(text.encode())
        self._flush()
        if not self._can_write.is_set():
            await self._can_write.wait()

    async def send_binary(self, data: bytes) -> None:
        """Send one binary message (raw audio for engines that take it)."""
        if self._closed.is_set():
            raise ConnectionError("websocket is closed")
        self._ws.send_binary(data)
        self._flush()
        if not self._can_write.is_set():
            await self._can_write.wait()

    async def recv(self) -> str | bytes | None:
        """The next message, or None once the connection is closed."""
        message = await self._messages.get()
        if message is _CLOSED:
            self._messages.put_nowait(_CLOSED)
            return None
        result: str | bytes = message
        return result

    async def keepalive(self, interval_s: float = 20.0, timeout_s: float = 20.0) -> None:
        """Ping every ``interval_s``; abort the connection if no pong comes within ``timeout_s``
        (a peer that vanished without closing would otherwise go unnoticed)."""
        while not self._closed.is_set():
            await asyncio.sleep(interval_s)
            if self._closed.is_set():
                return
            self._pong.clear()
            self._ws.send_ping(b"callbridge")
            self._flush()
            try:
                await asyncio.wait_for(self._pong.wait(), timeout_s)
            except TimeoutError:
                if self._transport is not None:
                    self._transport.abort()
                return

    async def close(self, code: int = 1000, reason: str = "", timeout_s: float = 2.0) -> None:
        """Close handshake, bounded in time; then the TCP connection."""
        if self._closed.is_set():
            return
        try:
            self._ws.send_close(code, reason)
            self._flush()
        except Exception:
            pass
        try:
            await asyncio.wait_for(self._closed.wait(), timeout_s)
        except TimeoutError:
            if self._transport is not None:
                self._transport.abort()


async def lean_connect(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    open_timeout_s: float = 10.0,
    max_size: int = 16 * 1024 * 1024,
) -> LeanWebSocket:
    """Open a websocket to ``url`` (ws:// or wss://). Raises ``InvalidHandshake`` / ``OSError`` /
    ``TimeoutError`` like ``websockets.connect``."""
    uri = parse_uri(url)
    protocol = ClientProtocol(uri, max_size=max_size)
    request = protocol.connect()
    for name, value in (headers or {}).items():
        request.headers[name] = value
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if uri.secure else None

    async def open_() -> LeanWebSocket:
        transport, conn = await loop.create_connection(
            lambda: LeanWebSocket(protocol, max_size), uri.host, uri.port, ssl=context
        )
        protocol.send_request(request)
        conn._flush()
        try:
            await conn._handshake
        except BaseException:
            transport.abort()
            raise
        return conn

    conn = await asyncio.wait_for(open_(), open_timeout_s)
    if protocol.handshake_exc is not None:  # pragma: no cover - raised through the future
        raise InvalidHandshake(str(protocol.handshake_exc))
    return conn


async def connect_engine(
    url: str, *, who: str, headers: Mapping[str, str] | None = None, open_timeout_s: float = 10.0
) -> LeanWebSocket:
    """:func:`lean_connect` for an engine: every way it fails is ``EngineUnavailable``."""
    from websockets.exceptions import InvalidURI

    from bridge.errors import EngineUnavailable

    try:
        return await lean_connect(url, headers=headers, open_timeout_s=open_timeout_s)
    except InvalidURI as exc:
        raise EngineUnavailable(f"bad {who} URL: {exc}", retryable=False) from None
    except InvalidHandshake as exc:
        raise EngineUnavailable(f"{who} handshake failed: {exc}") from None
    except (OSError, TimeoutError) as exc:
        raise EngineUnavailable(f"cannot reach {who}: {exc!r}") from None
