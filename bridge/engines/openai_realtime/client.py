"""OpenAI Realtime over a websocket: the thin I/O around :mod:`.protocol`.

Third-party errors stop here: a failed handshake, refused connection or time-out becomes
:class:`~bridge.errors.EngineUnavailable`; a connection that dies mid-call ends :meth:`events`
with an ``EngineClosed`` event saying how.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.exceptions import InvalidHandshake, InvalidURI

from bridge.engines.base import EngineClient
from bridge.engines.openai_realtime.protocol import OpenAIRealtimeProtocol
from bridge.engines.wsclient import LeanWebSocket, lean_connect
from bridge.errors import EngineProtocolError, EngineUnavailable
from bridge.session import actions as act
from bridge.session import events as ev

log = logging.getLogger(__name__)

DEFAULT_URL = "wss://api.openai.com/v1/realtime"


def session_url(base: str, model: str) -> str:
    """``base`` with ``?model=`` added (kept if the URL already names one)."""
    parts = urlsplit(base)
    if "model=" in parts.query:
        return base
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"model": model})))


class OpenAIRealtimeClient(EngineClient):
    """One Realtime session for one call."""

    protocol: OpenAIRealtimeProtocol

    def __init__(
        self,
        protocol: OpenAIRealtimeProtocol,
        *,
        api_key: str,
        url: str = DEFAULT_URL,
        connect_timeout_s: float = 10.0,
        call_id: str = "",
    ) -> None:
        self.protocol = protocol
        self._url = session_url(url, protocol.config.model)
        self._api_key = api_key
        self._connect_timeout_s = connect_timeout_s
        self._call_id = call_id
        self._ws: LeanWebSocket | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._closing = False

    async def connect(self) -> None:
        if not self._api_key:
            raise EngineUnavailable("OPENAI_API_KEY is not set", retryable=False)
        try:
            self._ws = await lean_connect(
                self._url,
                headers={"Authorization": f"Bearer {self._api_key}"},
                open_timeout_s=self._connect_timeout_s,
            )
        except InvalidURI as exc:
            raise EngineUnavailable(f"bad Realtime URL: {exc}", retryable=False) from None
        except InvalidHandshake as exc:
            raise EngineUnavailable(f"Realtime handshake failed: {exc}") from None
        except (OSError, TimeoutError) as exc:
            raise EngineUnavailable(f"cannot reach Realtime endpoint: {exc!r}") from None
        self._keepalive = asyncio.create_task(self._ws.keepalive())
        for message in self.protocol.opening_messages():
            await self._send_text(message)
        log.info("call %s: engine connected to %s", self._call_id, _redact(self._url))

    async def send(self, action: act.EngineAction) -> None:
        await self._send_text(self.protocol.encode(action))

    async def send_audio(self, payload: bytes) -> None:
        """Hot path: one caller chunk to the model."""
        await self._send_text(self.protocol.audio_append(payload))

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
        while (message := await ws.recv()) is not None:
            try:
                for event in self.protocol.receive(message):
                    yield event
            except EngineProtocolError as exc:
                log.warning("call %s: bad event from engine: %s", self._call_id, exc)
                yield ev.EngineError(f"protocol error: {exc.message}", "protocol_error")
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


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=""))
