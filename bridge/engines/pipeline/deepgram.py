"""Deepgram live speech-to-text as a pipeline part (``/v1/listen`` over a websocket).

Caller audio goes out as binary frames exactly as it came from the carrier
(``encoding=mulaw&sample_rate=8000``: nothing to transcode). Final segments are collected; at
the end of a caller turn (our VAD's endpoint) ``Finalize`` flushes Deepgram's buffer and the
turn's text is every final segment since the previous turn. ``KeepAlive`` goes out when no
audio has been sent for a while (Deepgram closes idle streams after 10 s with NET-0001).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson

from bridge.engines.pipeline.parts import SpeechToText
from bridge.engines.wsclient import LeanWebSocket, connect_engine
from bridge.errors import EngineProtocolError, EngineUnavailable

log = logging.getLogger(__name__)

KEEPALIVE = '{"type":"KeepAlive"}'
FINALIZE = '{"type":"Finalize"}'
CLOSE_STREAM = '{"type":"CloseStream"}'


def listen_url(
    base: str,
    *,
    model: str = "nova-3",
    language: str | None = None,
    keywords: Sequence[str] = (),
    endpointing_ms: int = 300,
) -> str:
    """The ``/v1/listen`` URL for μ-law 8 kHz telephone audio."""
    params: list[tuple[str, str]] = [
        ("model", model),
        ("encoding", "mulaw"),
        ("sample_rate", "8000"),
        ("channels", "1"),
        ("interim_results", "true"),
        ("endpointing", str(endpointing_ms)),
        ("utterance_end_ms", "1000"),
        ("vad_events", "true"),
        ("smart_format", "true"),
    ]
    if language:
        params.append(("language", language))
    # nova-3 takes key terms; older models take boosted keywords
    nova3 = model.startswith("nova-3")
    for word in keywords:
        params.append(("keyterm", word) if nova3 else ("keywords", f"{word}:2"))
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/listen"):
        path += "/v1/listen"
    return urlunsplit(parts._replace(path=path, query=urlencode(params)))


@dataclass(frozen=True, slots=True)
class Segment:
    """One ``Results`` message: its text, whether it is final, and whether it answers Finalize."""

    transcript: str
    is_final: bool
    speech_final: bool = False
    from_finalize: bool = False


def parse(message: str | bytes) -> Segment | str | None:
    """A server message → a :class:`Segment`, an error text (``Error``) or None (ignored).

    Raises :class:`EngineProtocolError` for what is not Deepgram's JSON at all."""
    try:
        m: Any = orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        raise EngineProtocolError(f"Deepgram message is not JSON: {exc}") from None
    if not isinstance(m, dict):
        raise EngineProtocolError("Deepgram message is not an object")
    kind = m.get("type")
    if kind == "Results":
        try:
            alternatives = m["channel"]["alternatives"]
            text = alternatives[0]["transcript"] if alternatives else ""
        except (KeyError, IndexError, TypeError) as exc:
            raise EngineProtocolError(f"malformed Deepgram Results: {exc!r}") from None
        return Segment(
            str(text),
            bool(m.get("is_final")),
            bool(m.get("speech_final")),
            bool(m.get("from_finalize")),
        )
    if kind == "Error":
        return str(m.get("description") or m.get("message") or m.get("variant") or "error")
    return None  # SpeechStarted, UtteranceEnd, Metadata, …: our own VAD runs the turns


class DeepgramSTT(SpeechToText):
    def __init__(
        self,
        *,
        api_key: str | None,
        url: str,
        finalize_timeout_s: float = 1.5,
        keepalive_after_s: float = 4.0,
        call_id: str = "",
    ) -> None:
        self.url = url
        self._api_key = api_key
        self._finalize_timeout_s = finalize_timeout_s
        self._keepalive_after_s = keepalive_after_s
        self._call_id = call_id
        self._ws: LeanWebSocket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._finals: list[str] = []
        self._flushed = asyncio.Event()
        self._failure: str | None = None
        self._last_send = 0.0
        self._closing = False

    async def start(self) -> None:
        if not self._api_key:
            raise EngineUnavailable("DEEPGRAM_API_KEY is not set", retryable=False)
        self._ws = await connect_engine(
            self.url, who="Deepgram", headers={"Authorization": f"Token {self._api_key}"}
        )
        self._last_send = asyncio.get_running_loop().time()
        self._tasks = [
            asyncio.create_task(self._read(self._ws)),
            asyncio.create_task(self._keepalive()),
        ]

    async def feed(self, audio: bytes) -> None:
        ws = self._ws
        if ws is None or self._failure is not None:
            return
        try:
            await ws.send_binary(audio)
        except ConnectionError:
            return  # the reader reports why
        self._last_send = asyncio.get_running_loop().time()

    async def finalize(self) -> str:
        ws = self._ws
        if ws is None:
            return ""
        self._flushed.clear()
        with contextlib.suppress(ConnectionError):
            await ws.send(FINALIZE)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flushed.wait(), self._finalize_timeout_s)
        text = " ".join(t for t in self._finals if t)
        self._finals.clear()
        return text

    def failure(self) -> str | None:
        return self._failure

    async def _read(self, ws: LeanWebSocket) -> None:
        while (message := await ws.recv()) is not None:
            try:
                parsed = parse(message)
            except EngineProtocolError as exc:
                log.warning("call %s: %s", self._call_id, exc.message)
                continue
            if isinstance(parsed, Segment):
                if parsed.is_final and parsed.transcript:
                    self._finals.append(parsed.transcript)
                if parsed.from_finalize:
                    self._flushed.set()
            elif isinstance(parsed, str):
                log.warning("call %s: Deepgram error: %s", self._call_id, parsed)
        if not self._closing:
            code, reason = ws.close_code, ws.close_reason
            how = "connection lost" if code in (None, 1006) else f"code {code} {reason}".strip()
            self._failure = f"Deepgram closed the stream: {how}"
        self._flushed.set()

    async def _keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        while self._ws is not None and self._failure is None:
            idle = loop.time() - self._last_send
            if idle >= self._keepalive_after_s:
                with contextlib.suppress(ConnectionError):
                    await self._ws.send(KEEPALIVE)
                self._last_send = loop.time()
                idle = 0.0
            await asyncio.sleep(self._keepalive_after_s - idle)

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionError):
                await ws.send(CLOSE_STREAM)
            await ws.close()
