"""A fake ElevenLabs Agents (ConvAI) server on loopback, for tests.

It speaks the ConvAI websocket protocol (``protocols.md`` §3) over a real socket, so the
official SDK, or the bridge's own client, connects to it unchanged::

    async with FakeElevenLabsAgents(responder=scripted("It has shipped."),
                                    first_message="Hello, thanks for calling.") as fake:
        client = AsyncElevenLabs(api_key="x", base_url=fake.http_url)
        conversation = AsyncConversation(client, "agent_test", requires_auth=False, ...)
    # leaving the block fails the test if a client message was invalid (fake.violations)

SDK 2.78.0 caveats: with ``requires_auth=True`` give ``AsyncConversation`` the *sync*
``ElevenLabs`` client (it fetches the signed URL with a sync call in a thread; an
``AsyncElevenLabs`` there yields an un-awaited coroutine). Prefer
``ClientTools(loop=asyncio.get_running_loop())``: by default tools run on a thread of their own
that also sends the result on the connection (works, but is not thread-safe). A tool returning
a non-string goes out as a non-string ``result`` (a violation here: the spec says string).

Endpoints: ``ws://127.0.0.1:PORT/v1/convai/conversation?agent_id=…[&conversation_signature=…]``
and ``GET /v1/convai/conversation/get-signed-url?agent_id=…`` (header ``xi-api-key``).

What it checks: the handshake (known agent, signature for private agents), every client message
against :mod:`.elevenlabs_schema` with unknown keys rejected at any depth, the init coming first
and in time, overrides against ``allowed_overrides`` (closes 1008 like the real service), a pong
for every ping, a known ``tool_call_id`` for every tool result. Problems go to
:attr:`~FakeElevenLabsAgents.violations`; the conversation goes on (the real server's reaction
to bad input is not documented). Every message the fake sends is validated too (a bad one is a
bug here: it raises).

What it does: metadata after the init, then the first message; pings; an energy VAD over the
caller's audio, pocketsphinx recognition of each utterance (in a worker process) →
``user_transcript`` → the *responder* (:mod:`.openai_script`) → ``agent_response`` + espeak
``audio`` (faster than real time) or ``client_tool_call``. One ``event_id`` counter per
conversation is shared by audio, pings and interruptions. Barge-in: caller speech while agent
audio is still being sent or, by wall clock, still playing → ``interruption``, then
``stale_after_interrupt`` audio events re-using older ids (a correct client drops them), then
``agent_response_correction`` cut to the words heard.

Not modelled: ``vad_score``, tentative responses, alignment, agent/system tools, signed-URL
expiry, turn timeouts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import http
import itertools
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import elevenlabs_schema as schema
from .common import Tasks, WebsocketFake, audioop, sleep_until, speech
from .openai_audio import EnergyVad, VadEvent, recognize_off_loop, warm_up_recognizer
from .openai_script import FakeTurn, Reply, Responder, TurnKind, echo_responder

__all__ = [
    "ALL_OVERRIDES",
    "CONVERSATION_PATH",
    "SIGNED_URL_PATH",
    "BargeIn",
    "ConvaiFormat",
    "Conversation",
    "FakeElevenLabsAgents",
    "PongRecord",
    "Speech",
    "ToolCall",
    "ToolResult",
    "Violation",
]

Message = dict[str, Any]

CONVERSATION_PATH = "/v1/convai/conversation"
SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
ALL_OVERRIDES = frozenset(
    {"agent.prompt.prompt", "agent.first_message", "agent.language", "tts.voice_id"}
)
"""Every override the protocol knows, as dotted paths under ``conversation_config_override``."""


@dataclass(frozen=True)
class ConvaiFormat:
    """An audio format the fake can decode and speak: ``ulaw_8000`` or ``pcm_8000/16000/24000``
    (16-bit little-endian mono)."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in ("ulaw_8000", "pcm_8000", "pcm_16000", "pcm_24000"):
            raise ValueError(f"the fake does not support the audio format {self.name!r}")

    @property
    def rate(self) -> int:
        return int(self.name.rpartition("_")[2])

    @property
    def is_ulaw(self) -> bool:
        return self.name.startswith("ulaw")

    @property
    def bytes_per_ms(self) -> int:
        return self.rate // 1000 * (1 if self.is_ulaw else 2)

    def duration_ms(self, nbytes: int) -> float:
        return nbytes / self.bytes_per_ms

    def to_pcm16(self, data: bytes) -> bytes:
        if self.is_ulaw:
            return audioop.ulaw2lin(data, 2)
        return data[: len(data) - len(data) % 2]

    def speak(self, text: str) -> bytes:
        """``text`` synthesized (espeak-ng) in this format."""
        if self.is_ulaw:
            return speech.synthesize_ulaw8k(text)
        return speech.synthesize_pcm(text, self.rate)

    def silence(self, ms: int) -> bytes:
        return (b"\xff" if self.is_ulaw else b"\x00\x00") * (self.rate * ms // 1000)


@dataclass(frozen=True)
class Violation:
    """A client message the real service would reject, or a protocol duty not met."""

    code: str
    message: str
    path: str | None
    data: Any
    conversation_id: str


@dataclass(frozen=True)
class BargeIn:
    """One interruption: when (``time.monotonic()``), its ``event_id``, the agent audio played
    by then (wall-clock estimate), the text before and after correction, the stale ids sent."""

    at: float
    event_id: int
    played_ms: float
    original: str
    corrected: str
    stale_event_ids: tuple[int, ...]


class ToolCall(NamedTuple):
    call_id: str
    name: str
    parameters: dict[str, Any]


class ToolResult(NamedTuple):
    call_id: str
    result: str | None
    is_error: bool | None


class PongRecord(NamedTuple):
    event_id: int
    rtt_ms: float
    late: bool


@dataclass(eq=False)
class Speech:
    """One agent utterance and how much of it went out (times from ``time.monotonic()``)."""

    conversation_id: str
    text: str
    audio: bytes
    format: ConvaiFormat
    event_ids: list[int] = field(default_factory=list)
    sent_bytes: int = 0
    first_audio_at: float | None = None
    sending: bool = True
    interrupted: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _idle: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def total_ms(self) -> float:
        return self.format.duration_ms(len(self.audio))

    @property
    def sent_ms(self) -> float:
        return self.format.duration_ms(self.sent_bytes)

    def played_ms(self, now: float) -> float:
        """Audio the caller has heard by ``now``, assuming playback from the first chunk on."""
        if self.first_audio_at is None:
            return 0.0
        return min(self.sent_ms, (now - self.first_audio_at) * 1000)

    @property
    def playing_until(self) -> float:
        """When playback of what was sent ends (``time.monotonic()``), assuming it started with
        the first chunk and ran in real time."""
        return (self.first_audio_at or time.monotonic()) + self.sent_ms / 1000

    def audible(self, now: float) -> bool:
        return not self.interrupted and (self.sending or self.played_ms(now) < self.sent_ms)

    def interrupt(self) -> None:
        """Stop sending (the loop in progress wakes up and ends)."""
        self.interrupted = True
        self._wake.set()

    def finish(self) -> None:
        self.sending = False
        self._idle.set()

    async def wait_finished(self) -> None:
        """Wait until the sending loop has ended (no audio of this speech goes out after)."""
        await self._idle.wait()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until loop time ``deadline``, or less if the speech is interrupted meanwhile."""
        await sleep_until(self._wake, deadline)


class _Utterances:
    """Caller audio → VAD events, each ``stopped`` with the PCM16 of its utterance. Pure:
    positions are milliseconds of input stream, whatever the wall clock did."""

    KEEP_MS = 1000  # audio kept while nobody speaks (covers the prefix padding)

    def __init__(self, fmt: ConvaiFormat, vad: EnergyVad) -> None:
        self.format = fmt
        self.vad = vad
        self._pcm = bytearray()
        self._start_ms = 0  # stream position of self._pcm[0]
        self._utterance_ms = 0

    def feed(self, wire: bytes) -> list[tuple[VadEvent, bytes]]:
        if not self.vad.in_speech and len(self._pcm) > 4 * self.format.rate * self.KEEP_MS // 1000:
            self._drop_before(self.vad.position_ms - self.KEEP_MS)
        pcm = self.format.to_pcm16(wire)
        self._pcm += pcm
        out: list[tuple[VadEvent, bytes]] = []
        for event in self.vad.feed(pcm):
            if event.kind == "started":
                self._utterance_ms = max(event.ms, self._start_ms)
                out.append((event, b""))
            else:
                lo, hi = self._offset(self._utterance_ms), self._offset(event.ms)
                out.append((event, bytes(self._pcm[lo:hi])))
                self._drop_before(event.ms)
        return out

    def _offset(self, ms: int) -> int:
        return max(0, (ms - self._start_ms) * self.format.rate // 1000 * 2)

    def _drop_before(self, ms: int) -> None:
        del self._pcm[: self._offset(ms)]
        self._start_ms = max(self._start_ms, ms)


class FakeElevenLabsAgents(WebsocketFake[Violation, "Conversation"]):
    """Async context manager running the fake on ``127.0.0.1`` with an ephemeral port.

    Options (all plain attributes, settable at any time; most take effect on the next use):
        responder: ``(FakeTurn) -> Reply | None``; default :func:`echo_responder`.
        agents: known agent ids (``None``: any id is a known public agent).
        private_agents: agents that need a ``conversation_signature`` (signed URL).
        api_key: the ``xi-api-key`` the signed-URL endpoint expects (``None``: any non-empty).
        first_message: spoken after the metadata unless the init overrides it (``None``: wait).
        allowed_overrides: dotted override paths the agent allows (default :data:`ALL_OVERRIDES`);
            another one closes the socket with 1008.
        output_format / input_format: ``ulaw_8000`` (default), ``pcm_8000/16000/24000``.
        wrong_output_format: announce this in the metadata instead (audio stays as configured).
        init_timeout_s: close with 1008 if no init arrives in time (default 10).
        ping_interval_s / pong_timeout_s: ping cadence (default 2; ``None``: no pings) and how
            long a pong may take before a ``pong_missing`` violation (default 2).
        chunk_ms / realtime_factor: audio per ``audio`` event (100 ms) and how much faster than
            real time it is sent (10; 0 = as fast as possible).
        response_latency_s: pause before asking the responder.
        stale_after_interrupt: old-id audio events sent after each ``interruption`` (2).
        transcription_phrases: restrict pocketsphinx to these phrases (exact transcripts).
        vad_threshold_rms / vad_speech_ms / vad_silence_ms / vad_prefix_padding_ms: energy VAD.
        refuse_status: answer every websocket handshake with this HTTP status.
        check_violations: leaving the ``async with`` raises if :attr:`violations` is not empty.

    Observability (across connections; times from ``time.monotonic()``): :attr:`received`,
    :attr:`sent`, :attr:`violations`, :attr:`inits`, :attr:`dynamic_variables`,
    :attr:`overrides`, :attr:`user_transcripts`, :attr:`user_messages`,
    :attr:`contextual_updates`, :attr:`user_activity`, :attr:`turns`, :attr:`tool_calls`,
    :attr:`tool_results`, :attr:`interruptions`, :attr:`speeches` (:attr:`audio_sent`),
    :attr:`pongs`, :attr:`connections`, :attr:`conversations`, :attr:`handshakes`,
    :attr:`signed_url_requests`; :meth:`wait_for`, :meth:`wait_connections`, :meth:`wait_quiet`.
    """

    _violations_are = "invalid client behaviour"
    _max_size = 16 * 1024 * 1024
    _untyped_received = "user_audio_chunk"  # audio chunks are the one message without a type

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        agents: Collection[str] | None = None,
        private_agents: Collection[str] = (),
        api_key: str | None = None,
        first_message: str | None = None,
        allowed_overrides: Collection[str] = ALL_OVERRIDES,
        output_format: str = "ulaw_8000",
        input_format: str = "ulaw_8000",
        wrong_output_format: str | None = None,
        init_timeout_s: float = 10.0,
        ping_interval_s: float | None = 2.0,
        pong_timeout_s: float = 2.0,
        chunk_ms: int = 100,
        realtime_factor: float = 10.0,
        response_latency_s: float = 0.0,
        stale_after_interrupt: int = 2,
        transcription_phrases: Sequence[str] | None = None,
        vad_threshold_rms: float = 300.0,
        vad_speech_ms: int = 60,
        vad_silence_ms: int = 500,
        vad_prefix_padding_ms: int = 300,
        refuse_status: int | None = None,
        check_violations: bool = True,
    ) -> None:
        super().__init__(check_violations=check_violations)
        self.responder: Callable[[FakeTurn], Reply | None] = responder or echo_responder
        self.agents = set(agents) if agents is not None else None
        self.private_agents = set(private_agents)
        self.api_key = api_key
        self.first_message = first_message
        self.allowed_overrides = frozenset(allowed_overrides)
        self.output_format = ConvaiFormat(output_format).name
        self.input_format = ConvaiFormat(input_format).name
        self.wrong_output_format = wrong_output_format
        self.init_timeout_s = init_timeout_s
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.chunk_ms = chunk_ms
        self.realtime_factor = realtime_factor
        self.response_latency_s = response_latency_s
        self.stale_after_interrupt = stale_after_interrupt
        self.transcription_phrases = tuple(transcription_phrases) if transcription_phrases else None
        self.vad_threshold_rms = vad_threshold_rms
        self.vad_speech_ms = vad_speech_ms
        self.vad_silence_ms = vad_silence_ms
        self.vad_prefix_padding_ms = vad_prefix_padding_ms
        self.refuse_status = refuse_status

        self.inits: list[Message] = []
        self.dynamic_variables: list[dict[str, str | bool | int | float]] = []
        self.overrides: list[Message] = []
        self.user_transcripts: list[str] = []
        self.user_messages: list[str] = []
        self.contextual_updates: list[str] = []
        self.user_activity = 0
        self.turns: list[FakeTurn] = []
        self.tool_calls: list[ToolCall] = []
        self.tool_results: list[ToolResult] = []
        self.interruptions: list[BargeIn] = []
        self.speeches: list[Speech] = []
        self.pongs: list[PongRecord] = []
        self.conversations: list[Conversation] = []
        self.handshakes: list[Request] = []
        self.signed_url_requests: list[Request] = []

        self._ids = itertools.count(1)
        self._secret = secrets.token_bytes(16)

    # ------------------------------------------------------------------ lifecycle

    def _warm_up(self) -> None:
        warm_up_recognizer()

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:PORT`` — the SDK client's ``base_url``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/v1/convai/conversation`` (add ``?agent_id=…``)."""
        return f"ws://127.0.0.1:{self.port}{CONVERSATION_PATH}"

    def conversation_url(self, agent_id: str, *, signed: bool = False) -> str:
        """The websocket URL for ``agent_id``; ``signed`` adds a valid signature."""
        url = f"{self.url}?agent_id={quote(agent_id, safe='')}"
        return f"{url}&conversation_signature={self._sign(agent_id)}" if signed else url

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    # ------------------------------------------------------------------ handshake and REST

    def _sign(self, agent_id: str) -> str:
        nonce = secrets.token_hex(8)
        mac = hmac.new(self._secret, f"{agent_id}:{nonce}".encode(), hashlib.sha256)
        return f"{nonce}.{mac.hexdigest()[:32]}"

    def _signature_ok(self, agent_id: str, signature: str) -> bool:
        nonce, _, mac = signature.partition(".")
        want = hmac.new(self._secret, f"{agent_id}:{nonce}".encode(), hashlib.sha256)
        return hmac.compare_digest(mac, want.hexdigest()[:32])

    def _known(self, agent_id: str) -> bool:
        return agent_id in self.private_agents or self.agents is None or agent_id in self.agents

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == SIGNED_URL_PATH:
            self.signed_url_requests.append(request)
            return self._signed_url(connection, request, query)
        self.handshakes.append(request)
        if self.refuse_status is not None:
            return _reply(connection, self.refuse_status, "refused", "Refused (test).")
        if url.path.rstrip("/") != CONVERSATION_PATH:
            return _reply(connection, 404, "not_found", "Not found.")
        agent_id = query.get("agent_id")
        if not agent_id:
            return _reply(connection, 400, "invalid_request", "agent_id is required.")
        if not self._known(agent_id):
            return _reply(connection, 403, "agent_not_found", f"Agent {agent_id} not found.")
        signature = query.get("conversation_signature")
        if signature is not None and not self._signature_ok(agent_id, signature):
            return _reply(connection, 401, "invalid_signature", "Invalid conversation signature.")
        if signature is None and agent_id in self.private_agents:
            return _reply(connection, 401, "auth_required", "This agent requires a signed URL.")
        return None

    def _signed_url(
        self, connection: ServerConnection, request: Request, query: dict[str, str]
    ) -> Response:
        key = request.headers.get("xi-api-key", "")
        if not key or (self.api_key is not None and key != self.api_key):
            return _reply(connection, 401, "invalid_api_key", "Invalid API key.")
        agent_id = query.get("agent_id")
        if not agent_id:
            return _reply(connection, 422, "invalid_request", "agent_id is required.")
        if not self._known(agent_id):
            return _reply(connection, 404, "agent_not_found", f"Agent {agent_id} not found.")
        body = {"signed_url": self.conversation_url(agent_id, signed=True)}
        return _json_response(connection, 200, body)

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        conversation = Conversation(self, ws, query["agent_id"][0])
        self.conversations.append(conversation)
        await self._serve(conversation)

    async def send_unknown_type(self, type_: str = "fake_unknown_event") -> None:
        """Send every open conversation a well-formed message of a type clients must ignore."""
        message = {"type": type_, f"{type_}_event": {"note": "clients must ignore this"}}
        await asyncio.gather(*(c.send_unchecked(json.dumps(message)) for c in self._live))

    async def send_raw(self, text: str) -> None:
        """Send every open conversation ``text`` as is (e.g. malformed JSON)."""
        await asyncio.gather(*(c.send_unchecked(text) for c in self._live))

    # ------------------------------------------------------------------ observability

    @property
    def audio_sent(self) -> list[int]:
        """Agent audio bytes sent per speech (first message and replies, in order)."""
        return [s.sent_bytes for s in self.speeches]

    def violate(
        self, conversation_id: str, code: str, message: str, path: str | None, data: Any
    ) -> None:
        self.violations.append(Violation(code, message, path, data, conversation_id))
        self.notify()

    def record(self, log: list[tuple[float, Message]], at: float, message: Message) -> None:
        log.append((at, message))
        self.notify()

    async def wait_violations(self, count: int, *, within_s: float = 10.0) -> None:
        await self._until(lambda: len(self.violations) >= count, within_s)

    async def wait_quiet(self, *, within_s: float = 10.0, playback: bool = True) -> None:
        """Wait until no agent audio is being sent and (``playback``) none is still playing by
        the wall-clock estimate — e.g. before a test caller speaks without barging in."""
        async with asyncio.timeout(within_s):
            while True:
                await self._until(lambda: not any(s.sending for s in self.speeches), within_s)
                now = time.monotonic()
                ends = [s.playing_until for s in self.speeches if playback and s.audible(now)]
                if not ends:
                    return
                await asyncio.sleep(max(ends) - now)


def _json_response(connection: ServerConnection, status: int, body: Message) -> Response:
    response = connection.respond(http.HTTPStatus(status), json.dumps(body))
    response.headers["Content-Type"] = "application/json"
    return response


def _reply(connection: ServerConnection, status: int, code: str, message: str) -> Response:
    """An error in ElevenLabs' REST shape: ``{"detail": {"status": …, "message": …}}``."""
    return _json_response(connection, status, {"detail": {"status": code, "message": message}})


def _leaves(tree: Message, prefix: str = "") -> Iterator[str]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


class Conversation:
    """One websocket connection: init, pings, caller audio, agent turns; :meth:`run` drives it."""

    def __init__(self, fake: FakeElevenLabsAgents, ws: ServerConnection, agent_id: str) -> None:
        self.fake = fake
        self.ws = ws
        self.agent_id = agent_id
        self.id = fake.new_id("conv")
        self.init: schema.ConversationInitiationClientData | None = None
        self.first_message = fake.first_message
        self.output = ConvaiFormat(fake.output_format)
        self.input = ConvaiFormat(fake.input_format)
        vad = EnergyVad(
            self.input.rate,
            threshold_rms=fake.vad_threshold_rms,
            speech_ms=fake.vad_speech_ms,
            silence_ms=fake.vad_silence_ms,
            prefix_padding_ms=fake.vad_prefix_padding_ms,
        )
        self.utterances = _Utterances(self.input, vad)
        self.speech: Speech | None = None
        self.pending_calls: dict[str, str] = {}  # tool_call_id → tool name
        self.pings: dict[int, float] = {}  # event_id → sent at, until answered or timed out
        self.late_pings: dict[int, float] = {}  # timed out; a pong is still welcome
        self.ping_ms: int | None = None
        self._event_ids = itertools.count(1)
        self._turn_lock = asyncio.Lock()
        self._tasks = Tasks(fake.internal_errors)
        self._handlers: dict[type[Any], Callable[[Any, Message], Awaitable[None]]] = {
            schema.ConversationInitiationClientData: self._on_init,
            schema.UserAudioChunk: self._on_audio,
            schema.Pong: self._on_pong,
            schema.ClientToolResult: self._on_tool_result,
            schema.ContextualUpdate: self._on_contextual_update,
            schema.UserMessage: self._on_user_message,
            schema.UserActivity: self._on_user_activity,
        }

    # ------------------------------------------------------------------ plumbing

    def next_event_id(self) -> int:
        return next(self._event_ids)

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro)

    def violate(self, code: str, message: str, path: str | None = None, data: Any = None) -> None:
        self.fake.violate(self.id, code, message, path, data)

    async def send(self, message: Message) -> bool:
        """Validate (a failure is a bug in the fake: raises) and send; False once closed."""
        try:
            schema.validate_server_message(message)
        except schema.MessageInvalid as exc:
            raise AssertionError(f"fake emitted an invalid {message.get('type')}: {exc}") from exc
        return await self._send(json.dumps(message), message)

    async def send_unchecked(self, text: str) -> bool:
        """Send ``text`` without validation (misbehaviour knobs)."""
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            record = {"raw": text}
        return await self._send(text, record if isinstance(record, dict) else {"raw": text})

    async def _send(self, text: str, record: Message) -> bool:
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            return False
        self.fake.record(self.fake.sent, time.monotonic(), record)
        return True

    async def run(self) -> None:
        self.spawn(self._init_watchdog())
        await self._tasks.run_until_closed(self.ws, self._dispatch)

    async def _dispatch(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            self.violate("binary_frame", "Binary frames are not part of the protocol.")
            return
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            self.violate("invalid_json", f"Invalid JSON: {exc}", None, raw)
            return
        try:
            message = schema.parse_client_message(data)
        except schema.MessageInvalid as exc:
            self.violate(exc.code, exc.message, exc.path, data)
            return
        self.fake.record(self.fake.received, time.monotonic(), data)
        is_init = isinstance(message, schema.ConversationInitiationClientData)
        if self.init is None and not is_init:
            self.violate(
                "before_init", "Sent before conversation_initiation_client_data.", None, data
            )
            return
        await self._handlers[type(message)](message, data)

    # ------------------------------------------------------------------ init and pings

    async def _init_watchdog(self) -> None:
        await asyncio.sleep(self.fake.init_timeout_s)
        if self.init is None:
            self.violate("init_timeout", "No conversation_initiation_client_data in time.")
            await self.ws.close(1008, "Conversation initiation timed out.")

    async def _on_init(
        self, message: schema.ConversationInitiationClientData, data: Message
    ) -> None:
        if self.init is not None:
            self.violate("duplicate_init", "The conversation was already initiated.", None, data)
            return
        self.init = message
        self.fake.inits.append(data)
        self.fake.dynamic_variables.append(dict(message.dynamic_variables or {}))
        override = message.conversation_config_override
        dumped = override.model_dump(exclude_none=True) if override else {}
        self.fake.overrides.append(dumped)
        for path in _leaves(dumped):
            if path not in self.fake.allowed_overrides:
                field_name = path.rpartition(".")[2]
                reason = f"Override for field '{field_name}' is not allowed by config."
                self.violate("override_not_allowed", reason, path, data)
                await self.ws.close(1008, reason)
                return
        agent = override.agent if override else None
        if agent is not None and agent.first_message is not None:
            self.first_message = agent.first_message
        metadata = {
            "conversation_id": self.id,
            "agent_output_audio_format": self.fake.wrong_output_format or self.output.name,
            "user_input_audio_format": self.input.name,
        }
        await self.send(
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": metadata,
            }
        )
        if self.fake.ping_interval_s is not None:
            self.spawn(self._ping_loop(self.fake.ping_interval_s))
        if self.first_message:
            self.spawn(self._say_first(self.first_message))

    async def _ping_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            event_id = self.next_event_id()
            self.pings[event_id] = time.monotonic()
            ping = {"event_id": event_id, "ping_ms": self.ping_ms}
            if not await self.send({"type": "ping", "ping_event": ping}):
                return
            self.spawn(self._expect_pong(event_id))

    async def _expect_pong(self, event_id: int) -> None:
        await asyncio.sleep(self.fake.pong_timeout_s)
        sent_at = self.pings.pop(event_id, None)
        if sent_at is not None:
            self.late_pings[event_id] = sent_at
            self.violate("pong_missing", f"No pong for ping {event_id} in time.", "event_id")

    async def _on_pong(self, message: schema.Pong, data: Message) -> None:
        event_id = message.event_id
        now = time.monotonic()
        late = event_id in self.late_pings
        pending = self.late_pings if late else self.pings
        sent_at = pending.pop(event_id, None) if event_id is not None else None
        if event_id is None or sent_at is None:
            self.violate(
                "pong_unknown", f"Pong for no pending ping ({event_id}).", "event_id", data
            )
            return
        rtt_ms = (now - sent_at) * 1000
        if not late:
            self.ping_ms = round(rtt_ms)
        self.fake.pongs.append(PongRecord(event_id, rtt_ms, late))
        self.fake.notify()

    # ------------------------------------------------------------------ caller input

    async def _on_audio(self, message: schema.UserAudioChunk, data: Message) -> None:
        try:
            wire = base64.b64decode(message.user_audio_chunk, validate=True)
        except (binascii.Error, ValueError):
            self.violate("invalid_base64", "user_audio_chunk is not valid base64.", None, data)
            return
        for event, pcm in self.utterances.feed(wire):
            if event.kind == "started":
                await self._barge_in()
            else:
                self.spawn(self._user_utterance(pcm))

    async def _user_utterance(self, pcm: bytes) -> None:
        text = await recognize_off_loop(pcm, self.input.rate, self.fake.transcription_phrases)
        self.fake.user_transcripts.append(text)
        await self.send(
            {"type": "user_transcript", "user_transcription_event": {"user_transcript": text}}
        )
        await self._respond("audio", transcript=text)

    async def _on_user_message(self, message: schema.UserMessage, data: Message) -> None:
        text = message.text or ""
        self.fake.user_messages.append(text)
        self.spawn(self._respond("text", text=text))

    async def _on_contextual_update(self, message: schema.ContextualUpdate, data: Message) -> None:
        self.fake.contextual_updates.append(message.text)

    async def _on_user_activity(self, message: schema.UserActivity, data: Message) -> None:
        self.fake.user_activity += 1

    async def _on_tool_result(self, message: schema.ClientToolResult, data: Message) -> None:
        call_id = message.tool_call_id
        name = self.pending_calls.pop(call_id, None) if call_id is not None else None
        if call_id is None or name is None:
            self.violate("unknown_tool_call", f"No pending tool call {call_id!r}.", None, data)
            return
        self.fake.tool_results.append(ToolResult(call_id, message.result, message.is_error))
        self.spawn(
            self._respond(
                "function_call_output", call_id=call_id, tool_name=name, tool_output=message.result
            )
        )

    # ------------------------------------------------------------------ agent turns

    async def _say_first(self, text: str) -> None:
        async with self._turn_lock:
            await self._speak(text)

    async def _respond(
        self,
        kind: TurnKind,
        *,
        transcript: str | None = None,
        text: str | None = None,
        call_id: str | None = None,
        tool_name: str | None = None,
        tool_output: str | None = None,
    ) -> None:
        async with self._turn_lock:
            turn = FakeTurn(
                kind=kind,
                index=len(self.fake.turns),
                transcript=transcript,
                text=text,
                call_id=call_id,
                tool_name=tool_name,
                tool_output=tool_output,
            )
            self.fake.turns.append(turn)
            if self.fake.response_latency_s > 0:
                await asyncio.sleep(self.fake.response_latency_s)
            reply = self.fake.responder(turn)
            if reply is None:
                return
            if reply.text and not await self._speak(reply.text):
                return  # interrupted: a call after the words is dropped too
            if reply.name:
                await self._call(reply.name, reply.arguments)

    async def _speak(self, text: str) -> bool:
        """``agent_response``, then paced ``audio``; False if interrupted or closed."""
        fmt = self.output
        speech = Speech(self.id, text, fmt.speak(text), fmt)
        self.speech = speech
        self.fake.speeches.append(speech)
        try:
            reply = {"type": "agent_response", "agent_response_event": {"agent_response": text}}
            if not await self.send(reply):
                return False
            chunk = fmt.bytes_per_ms * self.fake.chunk_ms
            factor = self.fake.realtime_factor
            start = asyncio.get_running_loop().time()
            for index, offset in enumerate(range(0, len(speech.audio), chunk)):
                if factor > 0:
                    await speech.sleep_until(start + index * self.fake.chunk_ms / 1000 / factor)
                else:
                    await asyncio.sleep(0)
                if speech.interrupted:
                    break
                piece = speech.audio[offset : offset + chunk]
                event_id = self.next_event_id()
                if not await self._send_audio(piece, event_id):
                    return False
                speech.first_audio_at = speech.first_audio_at or time.monotonic()
                speech.sent_bytes += len(piece)
                speech.event_ids.append(event_id)
        finally:
            speech.finish()
            self.fake.notify()
        return not speech.interrupted

    async def _send_audio(self, piece: bytes, event_id: int) -> bool:
        audio = {"audio_base_64": base64.b64encode(piece).decode(), "event_id": event_id}
        return await self.send({"type": "audio", "audio_event": audio})

    async def _call(self, name: str, arguments: dict[str, Any]) -> None:
        call_id = self.fake.new_id("toolu")
        self.pending_calls[call_id] = name
        self.fake.tool_calls.append(ToolCall(call_id, name, dict(arguments)))
        call = {"tool_name": name, "tool_call_id": call_id, "parameters": arguments}
        await self.send({"type": "client_tool_call", "client_tool_call": call})

    async def _barge_in(self) -> None:
        """Caller speech started: interrupt the current speech if it is still audible."""
        speech = self.speech
        if speech is None or not speech.audible(time.monotonic()):
            return
        speech.interrupt()
        await speech.wait_finished()  # no regular audio after this point
        now = time.monotonic()
        played_ms = speech.played_ms(now)
        event_id = self.next_event_id()
        if not await self.send(
            {"type": "interruption", "interruption_event": {"event_id": event_id}}
        ):
            return
        stale_ids = self._stale_ids(speech, event_id)
        chunk = self.output.bytes_per_ms * self.fake.chunk_ms
        offset = speech.sent_bytes
        for stale_id in stale_ids:  # audio "in flight" at the interruption, with old ids
            piece = speech.audio[offset : offset + chunk] or speech.audio[-chunk:]
            offset += len(piece)
            await self._send_audio(piece, stale_id)
        words = speech.text.split()
        heard = int(len(words) * played_ms / speech.total_ms) if speech.total_ms else 0
        corrected = " ".join(words[:heard])
        correction = {"original_agent_response": speech.text, "corrected_agent_response": corrected}
        await self.send(
            {"type": "agent_response_correction", "agent_response_correction_event": correction}
        )
        record = BargeIn(now, event_id, played_ms, speech.text, corrected, tuple(stale_ids))
        self.fake.interruptions.append(record)
        self.fake.notify()

    def _stale_ids(self, speech: Speech, interruption_id: int) -> list[int]:
        count = self.fake.stale_after_interrupt
        older = speech.event_ids[-count:] if count else []
        return older + [interruption_id] * (count - len(older))
