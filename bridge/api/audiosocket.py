"""The Asterisk AudioSocket listener: raw TCP, one connection = one call.

Started with the app (its lifespan) when ``CALLBRIDGE_AUDIOSOCKET_PORT`` is set; with several
workers every worker listens on the same port (``SO_REUSEPORT``) and the kernel spreads the
connections. :class:`TcpCarrierSocket` gives the runtime whole messages, cut by the codec's
:class:`~bridge.carriers.audiosocket.codec.AudioSocketReader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from bridge.carriers.audiosocket.codec import AudioSocketCodec, AudioSocketReader
from bridge.carriers.base import Frame
from bridge.errors import CarrierProtocolError, ConfigError
from bridge.journal.ids import new_call_id
from bridge.runtime.admission import admit
from bridge.runtime.call import CallRuntime
from bridge.runtime.services import Services

__all__ = ["TcpCarrierSocket", "start_audiosocket_listener"]

log = logging.getLogger(__name__)

READ_BYTES = 8192


class TcpCarrierSocket:
    """A TCP carrier connection as the runtime's ``CarrierSocket`` (whole messages in)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._framer = AudioSocketReader()
        self._messages: deque[bytes] = deque()
        self._closed = False

    async def receive(self) -> str | bytes | None:
        while not self._messages:
            if self._closed:
                return None
            try:
                data = await self._reader.read(READ_BYTES)
            except OSError:
                data = b""
            if not data:
                self._closed = True
                if self._framer.pending:
                    log.warning(
                        "AudioSocket: %d bytes of a truncated message", self._framer.pending
                    )
                return None
            try:
                self._messages.extend(self._framer.feed(data))
            except CarrierProtocolError as exc:
                log.warning("AudioSocket: %s; closing", exc.message)
                self._closed = True
                return None
        return self._messages.popleft()

    async def send(self, frame: Frame) -> None:
        if self._closed or self._writer.is_closing():
            return
        if isinstance(frame, str):
            raise TypeError("AudioSocket frames are bytes")
        self._writer.write(frame)
        try:
            await self._writer.drain()
        except OSError:
            self._closed = True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._closed = True
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


async def start_audiosocket_listener(services: Services) -> asyncio.Server:
    """Listen for AudioSocket connections on the configured address."""
    settings = services.settings
    parameters = {"agent": settings.audiosocket_agent} if settings.audiosocket_agent else {}
    try:  # a bad rate fails at start, not on every call
        AudioSocketCodec(settings.audiosocket_rate)
    except CarrierProtocolError as exc:
        raise ConfigError(f"CALLBRIDGE_AUDIOSOCKET_RATE: {exc.message}") from None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        call_id = new_call_id()
        socket = TcpCarrierSocket(reader, writer)
        codec = AudioSocketCodec(settings.audiosocket_rate, parameters)
        with admit(services, call_id, codec.carrier) as admitted:
            if not admitted:
                await socket.send(codec.hangup())
                await socket.close()
                return
            await CallRuntime(services, socket, codec, call_id=call_id).run()

    return await asyncio.start_server(
        handle, settings.audiosocket_host, settings.audiosocket_port, reuse_port=True
    )
