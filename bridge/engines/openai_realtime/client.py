"""OpenAI Realtime over a websocket: the thin I/O around :mod:`.protocol`."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from bridge.engines.openai_realtime.protocol import OpenAIRealtimeProtocol
from bridge.engines.wsengine import WebSocketEngine
from bridge.errors import EngineUnavailable

DEFAULT_URL = "wss://api.openai.com/v1/realtime"


def session_url(base: str, model: str) -> str:
    """``base`` with ``?model=`` added (kept if the URL already names one)."""
    parts = urlsplit(base)
    if "model=" in parts.query:
        return base
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"model": model})))


class OpenAIRealtimeClient(WebSocketEngine):
    """One Realtime session for one call."""

    name = "Realtime"
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
        super().__init__(
            protocol,
            url=session_url(url, protocol.config.model),
            headers={"Authorization": f"Bearer {api_key}"},
            connect_timeout_s=connect_timeout_s,
            call_id=call_id,
        )
        self._api_key = api_key

    async def connect(self) -> None:
        if not self._api_key:
            raise EngineUnavailable("OPENAI_API_KEY is not set", retryable=False)
        await super().connect()
