"""An engine spoken over one websocket: the thin I/O shared by every such engine.

The engine's sans-I/O protocol does all the talking; this class owns the socket (our lean
client, :mod:`bridge.engines.wsclient`), sends the protocol's opening messages, feeds it what
arrives, sends the replies it owes (``pong``) and turns third-party failures into callbridge's
own: a failed connect is :class:`~bridge.errors.EngineUnavailable`, a connection that dies
mid-call ends :meth:`events` with an ``EngineClosed`` that says how.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from bridge.engines.base import EngineClient, EngineProtocol
from bridge.engines.wsclient import LeanWebSocket, connect_engine
from bridge.errors import EngineProtocolError
from bridge.session import actions as act
from bridge.session import events as ev

log = logging.getLogger(__name__)


class WebSocketEngine(EngineClient):
    """One engine conversation over one websocket, for one call."""

    name = "engine"
    """How errors and logs call this engine ("Realtime", "ElevenLabs")."""

    def __init__(
        self,
        protocol: EngineProtocol,
        *,
        url: str,
        headers: Mapping[str, str] | None = None,
        connect_timeout_s: float = 10.0,
        call_id: str = "",
    ) -> None:
        self.protocol = protocol
        self.capabilities = protocol.capabilities
        self.url = url
        self._headers = dict(headers or {})
        self._connect_timeout_s = connect_timeout_s
        self._call_id = call_id
        self._ws: LeanWebSocket | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._closing = False

    async def resolve_url(self) -> str:
        """The URL to open; engines that must first ask for a signed URL override this."""
        return self.url

    async def connect(self) -> None:
        url = await self.resolve_url()
        self._ws = await connect_engine(
            url, who=self.name, headers=self._headers, open_timeout_s=self._connect_timeout_s
        )
        self._keepalive = asyncio.create_task(self._ws.keepalive())
        for message in self.protocol.opening_messages():
            await self._send_text(message)
        log.info("call %s: engine connected to %s", self._call_id, redact(url))

    async def send(self, action: act.EngineAction) -> None:
        message = self.protocol.encode(action)
        if message is not None:
            await self._send_text(message)

    async def send_audio(self, payload: bytes) -> None:
        """Hot path: one caller chunk to the engine."""
        await self._send_text(self.protocol.audio_message(payload))

    async def _send_text(self, text: str) -> None:
        ws = self._ws
        if ws is None:
            return
        try:
            await ws.send(text)
        except ConnectionError:
            pass  # events() reports the close with its reason

    async def events(self) -> AsyncIterator[ev.EngineEvent]:
        ws = self._ws
        if ws is None:
            yield ev.EngineClosed("not connected")
            return
        protocol = self.protocol
        while (message := await ws.recv()) is not None:
            try:
                events = protocol.receive(message)
            except EngineProtocolError as exc:
                log.warning("call %s: bad event from %s: %s", self._call_id, self.name, exc)
                yield ev.EngineError(f"protocol error: {exc.message}", "protocol_error")
                continue
            for reply in protocol.take_outgoing():
                await self._send_text(reply)
            for event in events:
                if type(event) is ev.EngineClosed:  # the protocol cannot go on (wrong format…)
                    self._closing = True
                    await ws.close(1000, event.reason[:120])
                    yield event
                    return
                yield event
        yield ev.EngineClosed(self._close_reason(ws))

    def _close_reason(self, ws: LeanWebSocket) -> str:
        if self._closing:
            return "closed by callbridge"
        code, reason = ws.close_code, ws.close_reason
        if code is None or code == 1006:
            return "connection lost"
        return f"code {code}" + (f": {reason}" if reason else "")

    async def close(self) -> None:
        self._closing = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        ws = self._ws
        if ws is not None:
            await ws.close()


def redact(url: str) -> str:
    """``url`` without its query (which may hold a signature or key)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=""))
