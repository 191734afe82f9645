"""A fake OpenAI Realtime (GA) server on loopback, for tests.

It speaks the GA protocol over a real websocket (``websockets``), so the official SDK, or the
bridge's own client, can connect to it unchanged::

    async with FakeRealtimeServer(responder=scripted("Hello, thanks for calling.")) as fake:
        client = AsyncOpenAI(api_key="sk-test", websocket_base_url=fake.base_url)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            ...
    # leaving the block fails the test if a client event was invalid (fake.violations)

What it checks: the handshake (``Authorization: Bearer …`` required, ``OpenAI-Beta`` refused),
every client event against the SDK's own models with unknown keys rejected at any depth
(→ ``error`` event + :attr:`violations`), and every event it sends (a bad one is a bug here:
it raises). What it does: a scripted energy VAD over the appended audio, pocketsphinx
recognition of each committed utterance (in a worker process, so the event loop the bridge
shares with the fake never stalls), and responses from a *responder* (:mod:`.openai_script`)
spoken with espeak-ng in the session's output format, streamed faster than real time.

A user turn is answered only after recognition finishes (the responder gets the transcript):
≈50 ms with ``transcription_phrases``, ≈0.6–1 s with the full language model. The first
recognition in a test run also waits for the worker to start (≈1 s; started on ``__aenter__``).

Not modelled: semantic VAD's semantics (treated as energy VAD), ``idle_timeout_ms``,
noise reduction, transcription sessions, MCP tools, WebRTC/SIP-only events.
"""

from __future__ import annotations

import asyncio
import http
import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .common import WebsocketFake
from .openai_audio import warm_up_recognizer
from .openai_script import FakeTurn, Reply, Responder, echo_responder
from .openai_session import RealtimeSession, Truncation, Violation

__all__ = ["MAX_DURATION_REASON", "FakeRealtimeServer"]

Event = dict[str, Any]

MAX_DURATION_REASON = "Your session hit the maximum duration of 60 minutes."


class FakeRealtimeServer(WebsocketFake[Violation, RealtimeSession]):
    """Async context manager running the fake on ``127.0.0.1`` with an ephemeral port.

    Options:
        responder: ``(FakeTurn) -> Reply | None``; default :func:`echo_responder`.
        chunk_ms: audio per ``response.output_audio.delta`` (default 100 ms).
        realtime_factor: how much faster than real time deltas are sent (default 10;
            0 = as fast as possible, 1 = real time).
        response_latency_s: pause between the trigger and ``response.created``.
        transcription_phrases: restrict pocketsphinx to these phrases (a JSGF grammar) —
            exact transcripts of espeak speech, vs. about a quarter of the words without.
        vad_threshold_rms / vad_speech_ms: energy VAD knobs (PCM16 RMS; loud time needed
            before ``speech_started``). Silence and prefix padding come from the session.
        max_duration_s: close every session after this long with 1001 and
            :data:`MAX_DURATION_REASON` (``max_duration_reason`` to change the text).
        refuse_status: answer every handshake with this HTTP status (e.g. 500); settable
            at any time to test connect failures and reconnects.
        check_violations: leaving the ``async with`` block raises if :attr:`violations` is
            not empty (default true; tests that provoke errors on purpose call
            :meth:`take_violations`).

    Observability (all across every connection, times from ``time.monotonic()``):
    :attr:`received`, :attr:`sent` (``(time, event)``), :attr:`violations`, :attr:`errors`
    (every ``error`` event sent), :attr:`speech_started_at`, :attr:`items` (assistant audio
    bytes sent per item id), :attr:`truncations`, :attr:`user_texts`, :attr:`turns`,
    :attr:`function_calls`, :attr:`connections`, :attr:`sessions`, :attr:`handshakes`,
    and :meth:`wait_for` to await an event.
    """

    _violations_are = "invalid client events"
    _max_size = 16 * 1024 * 1024

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        chunk_ms: int = 100,
        realtime_factor: float = 10.0,
        response_latency_s: float = 0.0,
        transcription_phrases: Sequence[str] | None = None,
        vad_threshold_rms: float = 300.0,
        vad_speech_ms: int = 60,
        max_duration_s: float | None = None,
        max_duration_reason: str = MAX_DURATION_REASON,
        refuse_status: int | None = None,
        check_violations: bool = True,
    ) -> None:
        super().__init__(check_violations=check_violations)
        self.responder: Callable[[FakeTurn], Reply | None] = responder or echo_responder
        self.chunk_ms = chunk_ms
        self.realtime_factor = realtime_factor
        self.response_latency_s = response_latency_s
        self.transcription_phrases = tuple(transcription_phrases) if transcription_phrases else None
        self.vad_threshold_rms = vad_threshold_rms
        self.vad_speech_ms = vad_speech_ms
        self.max_duration_s = max_duration_s
        self.max_duration_reason = max_duration_reason
        self.refuse_status = refuse_status

        self.errors: list[Event] = []
        self.speech_started_at: list[float] = []
        self.items: dict[str, int] = {}
        self.truncations: list[Truncation] = []
        self.user_texts: list[str] = []
        self.turns: list[FakeTurn] = []
        self.function_calls: list[tuple[str, str, dict[str, Any]]] = []
        self.sessions: list[RealtimeSession] = []
        self.handshakes: list[Request] = []

        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    def _warm_up(self) -> None:
        warm_up_recognizer()

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/v1/realtime`` (add ``?model=…``)."""
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    @property
    def base_url(self) -> str:
        """``ws://127.0.0.1:PORT/v1`` — the SDK's ``websocket_base_url``."""
        return f"ws://127.0.0.1:{self.port}/v1"

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    # ------------------------------------------------------------------ handshake

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes.append(request)
        if self.refuse_status is not None:
            return self._reject(connection, self.refuse_status, "server_error", "Refused (test).")
        url = urlsplit(request.path)
        if url.path.rstrip("/") != "/v1/realtime":
            return self._reject(connection, 404, "invalid_request_error", "Not found.")
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme != "Bearer" or not token.strip():
            return self._reject(
                connection,
                401,
                "invalid_request_error",
                "You didn't provide an API key. Use the Authorization header (Bearer).",
            )
        if "OpenAI-Beta" in request.headers:
            return self._reject(
                connection,
                400,
                "invalid_request_error",
                "The beta Realtime API (OpenAI-Beta: realtime=v1) is not supported; "
                "remove the OpenAI-Beta header and use the GA protocol.",
            )
        query = parse_qs(url.query)
        if not query.get("model") and not query.get("call_id"):
            return self._reject(
                connection, 400, "invalid_request_error", "Missing required parameter: 'model'."
            )
        return None

    @staticmethod
    def _reject(connection: ServerConnection, status: int, kind: str, message: str) -> Response:
        body = json.dumps({"error": {"type": kind, "code": None, "message": message}})
        response = connection.respond(http.HTTPStatus(status), body)
        response.headers["Content-Type"] = "application/json"
        return response

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        model = (query.get("model") or ["gpt-realtime"])[0]
        session = RealtimeSession(self, ws, model)
        self.sessions.append(session)
        expiry = (
            asyncio.create_task(self._expire(ws, self.max_duration_s))
            if self.max_duration_s is not None
            else None
        )
        try:
            await self._serve(session)
        finally:
            if expiry is not None:
                expiry.cancel()

    async def _expire(self, ws: ServerConnection, after_s: float) -> None:
        await asyncio.sleep(after_s)
        await ws.close(1001, self.max_duration_reason)

    # ------------------------------------------------------------------ observability

    def record_sent(self, at: float, event: Event) -> None:
        self.sent.append((at, event))
        if event["type"] == "error":
            self.errors.append(event)
        self.notify()

    def record_received(self, at: float, event: Event) -> None:
        self.received.append((at, event))
        self.notify()
