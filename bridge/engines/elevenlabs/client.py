"""ElevenLabs Agents over a websocket: public agents by id, private ones by signed URL."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from bridge.engines.elevenlabs.protocol import ElevenLabsProtocol
from bridge.engines.wsengine import WebSocketEngine
from bridge.errors import EngineUnavailable

DEFAULT_URL = "https://api.elevenlabs.io"
CONVERSATION_PATH = "/v1/convai/conversation"
SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"


def conversation_url(base: str, agent_id: str) -> str:
    """``wss://host/v1/convai/conversation?agent_id=…`` from the configured base URL."""
    parts = urlsplit(base)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith(CONVERSATION_PATH):
        path += CONVERSATION_PATH
    query = urlencode({"agent_id": agent_id})
    return urlunsplit(parts._replace(scheme=scheme, path=path, query=query))


def http_base(base: str) -> str:
    """The REST base for the same host (``wss`` → ``https``, ``ws`` → ``http``)."""
    parts = urlsplit(base)
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/").removesuffix(CONVERSATION_PATH)
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class ElevenLabsClient(WebSocketEngine):
    """One ElevenLabs conversation for one call."""

    name = "ElevenLabs"
    protocol: ElevenLabsProtocol

    def __init__(
        self,
        protocol: ElevenLabsProtocol,
        *,
        agent_id: str,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        private: bool = False,
        connect_timeout_s: float = 10.0,
        call_id: str = "",
    ) -> None:
        super().__init__(
            protocol,
            url=conversation_url(base_url, agent_id),
            connect_timeout_s=connect_timeout_s,
            call_id=call_id,
        )
        self._agent_id = agent_id
        self._base_url = base_url
        self._api_key = api_key
        self._private = private

    async def resolve_url(self) -> str:
        if not self._private:
            return self.url
        if not self._api_key:
            raise EngineUnavailable(
                "ELEVENLABS_API_KEY is not set (needed for a private agent)", retryable=False
            )
        url = http_base(self._base_url) + SIGNED_URL_PATH
        try:
            async with httpx.AsyncClient(timeout=self._connect_timeout_s) as http:
                response = await http.get(
                    url, params={"agent_id": self._agent_id}, headers={"xi-api-key": self._api_key}
                )
        except httpx.HTTPError as exc:
            raise EngineUnavailable(f"cannot get an ElevenLabs signed URL: {exc!r}") from None
        if response.status_code != 200:
            raise EngineUnavailable(
                f"ElevenLabs signed URL refused: HTTP {response.status_code} {response.text[:200]}",
                retryable=response.status_code >= 500,
            )
        try:
            signed = response.json()["signed_url"]
        except (ValueError, KeyError, TypeError):
            raise EngineUnavailable("ElevenLabs signed URL answer has no signed_url") from None
        if not isinstance(signed, str) or not signed.startswith(("ws://", "wss://")):
            raise EngineUnavailable(f"ElevenLabs returned a bad signed URL: {signed!r}")
        return signed
