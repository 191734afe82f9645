"""A fake Deepgram live speech-to-text server (``/v1/listen``) on loopback, for tests.

It speaks Deepgram's streaming protocol over a real websocket, so the official SDK
(``deepgram-sdk`` 7.x) or the bridge's own client connects to it unchanged::

    async with FakeDeepgramServer(transcription_phrases=PHRASES) as fake:
        dg = AsyncDeepgramClient(api_key="dg-test", environment=fake.environment)
        async with dg.listen.v1.connect(model="nova-3", encoding="mulaw", sample_rate=8000) as conn:
            ...
    # leaving the block fails the test if the client broke the protocol (fake.violations)

What it checks: the handshake (``Authorization: Token|Bearer <key>``; ``encoding`` and
``sample_rate`` are required — this fake takes raw audio only; parameter values as strict as
Deepgram's, e.g. ``mip_opt_out=False`` is a 400; unknown parameters → :attr:`violations`),
every text frame against the SDK's own pydantic models with unknown keys rejected at any depth
(→ ``Error`` message + violation), and every message it sends (a bad one raises: a bug here).

What it does, in *stream time* (milliseconds of audio received, never wall time, so sending
faster than real time gives the same messages): an energy VAD over the decoded audio
(``SpeechStarted`` with ``vad_events``), interim ``Results`` every ``interim_every_ms`` of
speech (pocketsphinx's partial hypothesis through the ``transcription_phrases`` grammar), a
final after ``endpointing`` ms of silence (``speech_final``), ``UtteranceEnd`` after
``utterance_end_ms`` without words, ``Finalize``/``CloseStream``/``Configure``, and the
``NET-0001`` close after ``idle_timeout_s`` (wall time, as Deepgram) without audio or a message.
Recognition runs in the worker process of :mod:`.openai_audio`, never on the event loop.

Not modelled: containerised audio, more than one channel, diarisation and the other formatting
features (punctuation is a capital and a full stop), finals forced by long speech without pauses,
empty finals during long silences, ``Sec-WebSocket-Protocol`` auth, keyterm token limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import hashlib
import http
import json
import re
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import pydantic
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import (
    ListenV1CloseStream,
    ListenV1Configure,
    ListenV1ConfigureFailure,
    ListenV1ConfigureSuccess,
    ListenV1Error,
    ListenV1Finalize,
    ListenV1KeepAlive,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import openai_audio
from .common import WebsocketFake, audioop, speech
from .openai_audio import EnergyVad, recognize_off_loop, warm_up_recognizer

__all__ = [
    "CLIENT_MESSAGES",
    "KNOWN_QUERY_PARAMETERS",
    "NET_0001_REASON",
    "SERVER_MESSAGES",
    "Action",
    "FakeDeepgramServer",
    "Handshake",
    "ListenConfig",
    "ListenSession",
    "ListenStream",
    "Mark",
    "MessageInvalid",
    "QueryRejected",
    "Segment",
    "SpeechStartedAt",
    "Transcribe",
    "UtteranceEndAt",
    "Violation",
    "parse_listen_query",
    "results_message",
    "validate_message",
]

Message = dict[str, Any]
Override = str | Callable[[bytes, int], str]

NET_0001_REASON = (
    "NET-0001: Deepgram did not receive audio data or a text message within the timeout window."
)
"""Close reason (code 1011) after ``idle_timeout_s`` without audio or a text message."""

KNOWN_QUERY_PARAMETERS = frozenset(
    {
        # the keyword arguments of deepgram-sdk 7.17's `listen.v1.connect` (a test keeps it so)
        "callback", "callback_method", "channels", "detect_entities", "diarize", "diarize_model",
        "dictation", "encoding", "endpointing", "extra", "interim_results", "keyterm", "keywords",
        "language", "language_hint", "mip_opt_out", "model", "multichannel", "numerals",
        "profanity_filter", "punctuate", "redact", "replace", "sample_rate", "search",
        "smart_format", "tag", "utterance_end_ms", "vad_events", "version",
        # documented for streaming but missing from the SDK's signature
        "filler_words", "no_delay",
    }
)  # fmt: skip
_DEEPGRAM_ENCODINGS = frozenset(
    {
        "linear16", "linear32", "flac", "alaw", "mulaw", "amr-nb", "amr-wb", "opus", "ogg-opus",
        "speex", "g729",
    }
)  # fmt: skip
_DECODABLE = ("linear16", "mulaw", "alaw")
_BOOL_PARAMS = (
    "interim_results", "vad_events", "smart_format", "punctuate", "numerals", "profanity_filter",
    "diarize", "dictation", "filler_words", "multichannel", "detect_entities", "mip_opt_out",
    "no_delay",
)  # fmt: skip
_DEFAULT_ENDPOINTING_MS = 10
_SEGMENT_SILENCE_MS = 500  # with endpointing=false: silence that still closes a segment
_PAD_MS = 300  # audio kept before the speech onset for recognition
_CONFIDENCE = 0.99
_WORD_RE = re.compile(r"[a-z0-9']+")

# --------------------------------------------------------------------------- validation

CLIENT_MESSAGES: Mapping[str, type[pydantic.BaseModel]] = {
    "KeepAlive": ListenV1KeepAlive,
    "Finalize": ListenV1Finalize,
    "CloseStream": ListenV1CloseStream,
    "Configure": ListenV1Configure,
}
SERVER_MESSAGES: Mapping[str, type[pydantic.BaseModel]] = {
    "Results": ListenV1Results,
    "SpeechStarted": ListenV1SpeechStarted,
    "UtteranceEnd": ListenV1UtteranceEnd,
    "Metadata": ListenV1Metadata,
    "Error": ListenV1Error,
    "ConfigureSuccess": ListenV1ConfigureSuccess,
    "ConfigureFailure": ListenV1ConfigureFailure,
}


class MessageInvalid(ValueError):
    """A message does not match the SDK's model for its ``type``."""


def _extra_keys(value: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of every key a model accepted without declaring it (all allow extras)."""
    if isinstance(value, pydantic.BaseModel):
        for key in value.model_extra or {}:
            yield f"{path}{key}"
        for name in type(value).model_fields:
            yield from _extra_keys(getattr(value, name), f"{path}{name}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _extra_keys(item, f"{path}[{index}].")


def validate_message(data: Any, table: Mapping[str, type[pydantic.BaseModel]]) -> None:
    """Check ``data`` against the model its ``type`` picks from ``table``; raise
    :class:`MessageInvalid`. The SDK's models accept anything (extra keys, and for
    ``KeepAlive``/``Finalize``/``CloseStream`` any ``type``), so the table and the extra-key
    check carry the strictness."""
    if not isinstance(data, dict):
        raise MessageInvalid("a message must be a JSON object")
    kind = data.get("type")
    model = table.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise MessageInvalid(f"unknown message type {kind!r}")
    try:
        parsed = model.model_validate(data, strict=True)
    except pydantic.ValidationError as exc:
        raise MessageInvalid(f"invalid {data['type']}: {exc.errors()[0]['msg']}") from None
    extra = list(_extra_keys(parsed))
    if extra:
        raise MessageInvalid(f"unknown field {extra[0]!r} in {data['type']}")


# --------------------------------------------------------------------------- query


class QueryRejected(ValueError):
    """The handshake is refused with HTTP 400 (the message becomes the body's ``err_msg``)."""

    err_code = "INVALID_QUERY_PARAMETER"


@dataclass(frozen=True)
class ListenConfig:
    """The parsed query of one ``/v1/listen`` handshake (what the fake models of it)."""

    model: str
    encoding: str
    sample_rate: int
    interim_results: bool = False
    endpointing_ms: int | None = _DEFAULT_ENDPOINTING_MS
    utterance_end_ms: int | None = None
    vad_events: bool = False
    punctuate: bool = False
    smart_format: bool = False
    language: str = "en"
    keywords: tuple[tuple[str, float | None], ...] = ()
    keyterms: tuple[str, ...] = ()


def _int(query: Mapping[str, list[str]], name: str) -> int | None:
    value = query.get(name, [None])[0]
    if value is None:
        return None
    if not value.isdigit():
        raise QueryRejected(f"Invalid value for {name}: {value!r} (expected an integer).")
    return int(value)


def _bool(query: Mapping[str, list[str]], name: str) -> bool:
    value = query.get(name, ["false"])[0]
    if value not in ("true", "false"):  # Deepgram is case-sensitive: `False` is a 400
        raise QueryRejected(f"Invalid value for {name}: {value!r} (expected true or false).")
    return value == "true"


def _keyword(raw: str) -> tuple[str, float | None]:
    word, sep, boost = raw.rpartition(":")
    if not sep:
        return raw, None
    try:
        return word, float(boost)
    except ValueError:
        raise QueryRejected(f"Invalid keyword boost in {raw!r}.") from None


def parse_listen_query(query: Mapping[str, list[str]]) -> tuple[ListenConfig, list[str]]:
    """Parse a ``parse_qs`` query: the config and the problems a real server would not
    refuse outright (the fake records them as violations). Raises :class:`QueryRejected`."""
    problems = [
        f"unknown query parameter {name!r}" for name in query if name not in KNOWN_QUERY_PARAMETERS
    ]
    encoding = query.get("encoding", [None])[0]
    sample_rate = _int(query, "sample_rate")
    if encoding is None or sample_rate is None:
        raise QueryRejected("encoding and sample_rate are required for raw audio.")
    if encoding not in _DEEPGRAM_ENCODINGS:
        raise QueryRejected(f"Invalid encoding {encoding!r}.")
    if encoding not in _DECODABLE:
        raise QueryRejected(f"encoding {encoding!r} is not modelled by the fake.")
    if sample_rate <= 0 or sample_rate % 50:
        raise QueryRejected(f"sample_rate {sample_rate} is not modelled by the fake.")
    if (_int(query, "channels") or 1) != 1:
        raise QueryRejected("channels > 1 is not modelled by the fake.")
    flags = {name: _bool(query, name) for name in _BOOL_PARAMS}
    endpointing = query.get("endpointing", [None])[0]
    endpointing_ms: int | None = _DEFAULT_ENDPOINTING_MS
    if endpointing == "false":
        endpointing_ms = None
    elif endpointing not in (None, "true"):
        endpointing_ms = _int(query, "endpointing")
    utterance_end_ms = _int(query, "utterance_end_ms")
    if utterance_end_ms is not None and not flags["interim_results"]:
        problems.append("utterance_end_ms needs interim_results=true (no UtteranceEnd is sent)")
    if utterance_end_ms is not None and utterance_end_ms < 1000:
        problems.append(f"utterance_end_ms={utterance_end_ms}: Deepgram needs 1000 or more")
    model = query.get("model", ["base"])[0]
    keywords = tuple(_keyword(raw) for raw in query.get("keywords", []))
    keyterms = tuple(query.get("keyterm", []))
    if keywords and model.startswith("nova-3"):
        problems.append("keywords are not supported by nova-3 models (use keyterm)")
    if keyterms and not model.startswith("nova-3"):
        problems.append(f"keyterm is supported by nova-3 models only, not {model!r}")
    config = ListenConfig(
        model=model,
        encoding=encoding,
        sample_rate=sample_rate,
        interim_results=flags["interim_results"],
        endpointing_ms=endpointing_ms,
        utterance_end_ms=utterance_end_ms,
        vad_events=flags["vad_events"],
        punctuate=flags["punctuate"],
        smart_format=flags["smart_format"],
        language=query.get("language", ["en"])[0],
        keywords=keywords,
        keyterms=keyterms,
    )
    return config, problems


# --------------------------------------------------------------------------- stream core


@dataclass(frozen=True)
class Segment:
    """Audio to transcribe and where it sits in the stream (milliseconds of audio received)."""

    pcm16: bytes
    """From the speech onset (minus padding) to :attr:`end_ms`; empty if there was no speech."""
    start_ms: int
    """``Results.start``: where the previous final ended."""
    end_ms: int
    """``Results.start + duration``."""
    speech: tuple[int, int] | None
    """The speech span the words are spread over; ``None``: no speech (empty transcript)."""


@dataclass(frozen=True)
class SpeechStartedAt:
    ms: int


@dataclass(frozen=True)
class Transcribe:
    segment: Segment
    is_final: bool
    speech_final: bool = False
    from_finalize: bool = False


@dataclass(frozen=True)
class UtteranceEndAt:
    last_word_end_ms: int


Action = SpeechStartedAt | Transcribe | UtteranceEndAt


class ListenStream:
    """The pure core of one stream: wire audio and control messages in, actions out.

    No I/O and no clock: every position is milliseconds of audio received (the VAD's 20 ms
    windows), so pacing never changes the result.
    """

    def __init__(
        self,
        config: ListenConfig,
        *,
        interim_every_ms: int = 500,
        threshold_rms: float = 300.0,
        speech_ms: int = 60,
    ) -> None:
        self.config = config
        self.rate = config.sample_rate
        self.interim_every_ms = interim_every_ms
        endpointing = config.endpointing_ms
        self.silence_ms = _SEGMENT_SILENCE_MS if endpointing is None else endpointing
        self.vad = EnergyVad(
            self.rate,
            threshold_rms=threshold_rms,
            speech_ms=speech_ms,
            silence_ms=self.silence_ms,
            prefix_padding_ms=0,
        )
        self.audio_bytes = 0
        self.cursor_ms = 0
        """Where the last final ended (the next ``Results.start``)."""
        self.speech_start_ms: int | None = None
        self._sha256 = hashlib.sha256()
        self._odd = b""  # linear16: a byte left over from an odd-sized frame
        self._samples = 0
        self._pcm = bytearray()
        self._pcm_start_ms = 0
        self._next_interim_ms = 0
        self._last_speech_end_ms: int | None = None  # waiting for UtteranceEnd

    @property
    def duration_s(self) -> float:
        """Seconds of audio received."""
        return self._samples / self.rate

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def feed(self, wire: bytes) -> list[Action]:
        self.audio_bytes += len(wire)
        self._sha256.update(wire)
        pcm = self._decode(wire)
        self._pcm += pcm
        self._samples += len(pcm) // 2
        actions: list[Action] = []
        for event in self.vad.feed(pcm):
            self._due(event.ms, actions)
            if event.kind == "started":
                self.speech_start_ms = event.ms
                self._next_interim_ms = event.ms + self.interim_every_ms
                self._last_speech_end_ms = None
                if self.config.vad_events:
                    actions.append(SpeechStartedAt(event.ms))
            elif self.speech_start_ms is not None:
                speech_end = event.ms - self.silence_ms
                if speech_end - self.speech_start_ms >= self.vad.speech_ms:
                    speech_final = self.config.endpointing_ms is not None
                    actions.append(self._final(event.ms, speech_end, speech_final=speech_final))
                else:  # (almost) only silence since a Finalize: the last word ended there
                    self._last_speech_end_ms = self.speech_start_ms
                    self.speech_start_ms = None
        position = self.vad.position_ms
        self._due(position, actions)
        keep_from = self.speech_start_ms if self.speech_start_ms is not None else position
        self._drop_before(keep_from - _PAD_MS)
        return actions

    def flush(self, *, from_finalize: bool) -> list[Action]:
        """``Finalize`` (``from_finalize``: always a final, empty if nobody speaks) or
        ``CloseStream`` (a final only for speech in progress)."""
        end = self.vad.position_ms
        if self.speech_start_ms is not None:
            action = self._final(end, end, speech_final=False, from_finalize=from_finalize)
            # The VAD is still in speech: what follows is a new segment, until it hears silence.
            self.speech_start_ms = end
            self._next_interim_ms = end + self.interim_every_ms
            self._last_speech_end_ms = None
            return [action]
        if not from_finalize:
            return []
        segment = Segment(b"", self.cursor_ms, end, None)
        self.cursor_ms = end
        return [Transcribe(segment, is_final=True, from_finalize=True)]

    def _due(self, until_ms: int, actions: list[Action]) -> None:
        """Interims and ``UtteranceEnd`` due up to ``until_ms``, each at its exact position
        (so frame sizes never change what is sent)."""
        if self.config.interim_results:
            while self.speech_start_ms is not None and self._next_interim_ms <= until_ms:
                at = self._next_interim_ms
                actions.append(Transcribe(self._segment(at, at), is_final=False))
                self._next_interim_ms += self.interim_every_ms
        wait_ms = self.config.utterance_end_ms if self.config.interim_results else None
        last = self._last_speech_end_ms
        if wait_ms is not None and last is not None and until_ms >= last + wait_ms:
            actions.append(UtteranceEndAt(last))
            self._last_speech_end_ms = None

    def _final(
        self, end_ms: int, speech_end_ms: int, *, speech_final: bool, from_finalize: bool = False
    ) -> Transcribe:
        segment = self._segment(end_ms, speech_end_ms)
        self.cursor_ms = end_ms
        self.speech_start_ms = None
        self._last_speech_end_ms = speech_end_ms
        return Transcribe(segment, True, speech_final, from_finalize)

    def _segment(self, end_ms: int, speech_end_ms: int) -> Segment:
        start = self.speech_start_ms if self.speech_start_ms is not None else end_ms
        lo, hi = self._offset(start - _PAD_MS), self._offset(end_ms)
        return Segment(bytes(self._pcm[lo:hi]), self.cursor_ms, end_ms, (start, speech_end_ms))

    def _decode(self, wire: bytes) -> bytes:
        if self.config.encoding == "mulaw":
            return audioop.ulaw2lin(wire, 2)
        if self.config.encoding == "alaw":
            return audioop.alaw2lin(wire, 2)
        data = self._odd + wire
        whole = len(data) - len(data) % 2
        self._odd = data[whole:]
        return data[:whole]

    def _offset(self, ms: int) -> int:
        return max(0, (ms - self._pcm_start_ms) * self.rate // 1000 * 2)

    def _drop_before(self, ms: int) -> None:
        if ms > self._pcm_start_ms:
            del self._pcm[: self._offset(ms)]
            self._pcm_start_ms = ms


# --------------------------------------------------------------------------- messages


def _model_info(model: str) -> Message:
    return {
        "model_info": {"name": f"general-{model}", "version": "2025-01-01.0", "arch": model},
        "model_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"deepgram-fake/{model}")),
    }


def results_message(
    action: Transcribe, text: str, *, config: ListenConfig, request_id: str
) -> Message:
    """A ``Results`` message for ``action`` whose recognised text is ``text``."""
    segment = action.segment
    words = _WORD_RE.findall(text.lower()) if segment.speech is not None else []
    shown = words
    if words and (config.punctuate or config.smart_format):
        shown = ["I" if w == "i" else w for w in words]
        shown[0] = shown[0][:1].upper() + shown[0][1:]
        shown[-1] += "."
    items: list[Message] = []
    if segment.speech is not None and words:
        begin, end = segment.speech[0] / 1000, segment.speech[1] / 1000
        step = (end - begin) / len(words)
        for i, (word, punctuated) in enumerate(zip(words, shown, strict=True)):
            item: Message = {
                "word": word,
                "start": round(begin + i * step, 3),
                "end": round(begin + (i + 1) * step, 3),
                "confidence": _CONFIDENCE,
            }
            if shown is not words:
                item["punctuated_word"] = punctuated
            items.append(item)
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": round((segment.end_ms - segment.start_ms) / 1000, 3),
        "start": round(segment.start_ms / 1000, 3),
        "is_final": action.is_final,
        "speech_final": action.speech_final,
        "channel": {
            "alternatives": [
                {
                    "transcript": " ".join(shown),
                    "confidence": _CONFIDENCE if words else 0.0,
                    "words": items,
                }
            ]
        },
        "metadata": {"request_id": request_id, **_model_info(config.model)},
        "from_finalize": action.from_finalize,
    }


def _worker_ready() -> None:
    """Run in the recognizer process so that it imports this module early (warm-up)."""


def _partial_hypothesis(pcm16: bytes, rate: int, phrases: tuple[str, ...]) -> str:
    """Worker side of :func:`_recognize_interim`: the best path through the phrase grammar
    *so far* (pocketsphinx's hypothesis read before ``end_utt``), which — unlike a finished
    decode — does not have to reach the end of a phrase. It reuses :mod:`speech`'s decoder,
    with the same per-utterance resets, so it stays a pure function of its input."""
    speech.recognize(b"", rate, grammar_words=phrases)  # loads the decoder, compiles the grammar
    pcm16k = speech._prepare(pcm16, rate)
    chunk = speech.RECOGNIZER_RATE * 2 * 20 // 1000
    with speech._DECODER_LOCK:
        recognizer = speech._recognizer
        assert recognizer is not None
        decoder = recognizer.decoder
        decoder.activate_search(recognizer.grammar_search(phrases))
        decoder.set_cmn(recognizer.initial_cmn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            decoder.start_stream()
        decoder.start_utt()
        for start in range(0, len(pcm16k), chunk):
            decoder.process_raw(pcm16k[start : start + chunk], False, False)
        hyp = decoder.hyp()
        text: str = "" if hyp is None else hyp.hypstr
        decoder.end_utt()
    return " ".join(_WORD_RE.findall(text.lower()))


async def _recognize_interim(pcm16: bytes, rate: int, phrases: Sequence[str] | None) -> str:
    if not phrases:
        return await recognize_off_loop(pcm16, rate, None)
    call = functools.partial(_partial_hypothesis, pcm16, rate, tuple(phrases))
    try:
        return await asyncio.get_running_loop().run_in_executor(openai_audio._pool(), call)
    except BrokenProcessPool:  # recognize_off_loop replaces the pool; the next call uses it
        return await recognize_off_loop(pcm16, rate, phrases)


# --------------------------------------------------------------------------- I/O


@dataclass(frozen=True)
class Violation:
    """Something the client did that a real server would reject or that breaks the protocol."""

    code: str
    message: str
    data: Any = None


@dataclass(frozen=True)
class Handshake:
    """One ``/v1/listen`` handshake: ``status`` is 101 if accepted, else the HTTP refusal."""

    path: str
    query: dict[str, list[str]]
    headers: Headers
    request_id: str
    status: int


class Mark(NamedTuple):
    """A ``KeepAlive``/``Finalize``: when (``time.monotonic()``) and at which stream second."""

    at: float
    stream_s: float


Job = Callable[[], Awaitable[None]]


class ListenSession:
    """One connection: receives frames, feeds :class:`ListenStream`, and sends what its actions
    call for, in order, from a single writer task (recognition happens in that task)."""

    def __init__(
        self, fake: FakeDeepgramServer, ws: ServerConnection, config: ListenConfig, request_id: str
    ) -> None:
        self.fake = fake
        self.ws = ws
        self.config = config
        self.request_id = request_id
        now = datetime.datetime.now(datetime.UTC)
        self.created = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        self.stream = ListenStream(
            config,
            interim_every_ms=fake.interim_every_ms,
            threshold_rms=fake.vad_threshold_rms,
            speech_ms=fake.vad_speech_ms,
        )
        self.keyterms = config.keyterms
        self.received: list[Message] = []
        self.sent: list[Message] = []
        self.closing = False
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        self._words_since_utterance_end = False
        self._finished = False

    @property
    def audio_bytes(self) -> int:
        return self.stream.audio_bytes

    async def run(self) -> None:
        writer = asyncio.create_task(self._write())
        try:
            await self._read()
        finally:
            if not self.closing:
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            remaining = self.fake.idle_timeout_s - (loop.time() - last)
            try:
                async with asyncio.timeout(None if self.closing else max(0.0, remaining)):
                    message = await self.ws.recv()
            except TimeoutError:
                await self.close(1011, NET_0001_REASON)
                return
            except ConnectionClosed:
                return
            last = loop.time()
            if isinstance(message, bytes):
                self._on_audio(message)
            else:
                self._on_text(message)

    async def _write(self) -> None:
        while not self._finished:
            job = await self._jobs.get()
            try:
                await job()
            except ConnectionClosed:
                pass
            except Exception as exc:
                self.fake.internal_errors.append(exc)

    def _enqueue(self, actions: Sequence[Action]) -> None:
        for action in actions:
            self._jobs.put_nowait(functools.partial(self._perform, action))

    # ------------------------------------------------------------------ client frames

    def _violation(self, code: str, message: str, data: Any = None) -> None:
        self.fake.violations.append(Violation(code, message, data))

    def _on_audio(self, data: bytes) -> None:
        if self.closing:
            self._violation("AudioAfterCloseStream", "audio after CloseStream is ignored")
            return
        if not data:
            self._violation(
                "EmptyFrame", "an empty binary frame closes the stream; send CloseStream"
            )
            self._close_stream()
            return
        self._enqueue(self.stream.feed(data))

    def _on_text(self, text: str) -> None:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            looks_like_audio = len(text) >= 16 and re.fullmatch(r"[A-Za-z0-9+/=\s]+", text)
            hint = " (audio goes in binary frames)" if looks_like_audio else ""
            self._schema_error(f"The message is not valid JSON{hint}.", text)
            return
        try:
            validate_message(data, CLIENT_MESSAGES)
        except MessageInvalid as exc:
            self._schema_error(f"{exc}.", text)
            return
        self.received.append(data)
        self.fake.record_received(data)
        mark = Mark(time.monotonic(), self.stream.duration_s)
        kind = data["type"]
        if kind == "KeepAlive":
            self.fake.keepalives.append(mark)
        elif kind == "Finalize":
            self.fake.finalizes.append(mark)
            self._enqueue(self.stream.flush(from_finalize=True))
        elif kind == "CloseStream":
            self._close_stream()
        else:
            self._jobs.put_nowait(functools.partial(self._configure, data))

    def _schema_error(self, description: str, text: str) -> None:
        self._violation("SchemaError", description, text)
        error = {"type": "Error", "variant": "SchemaError", "description": description}
        self._jobs.put_nowait(functools.partial(self.send, {**error, "message": text}))

    def _close_stream(self) -> None:
        self.closing = True
        self._enqueue(self.stream.flush(from_finalize=False))
        self._jobs.put_nowait(self._finish)

    # ------------------------------------------------------------------ server messages

    async def send(self, message: Message, *, validate: bool = True) -> None:
        """Validate (a failure is a bug in the fake: raises) and send one message."""
        if validate:
            try:
                validate_message(message, SERVER_MESSAGES)
            except MessageInvalid as exc:
                raise AssertionError(f"the fake built an invalid message: {exc}") from exc
        await self.ws.send(json.dumps(message))
        self.sent.append(message)
        self.fake.record_sent(message)

    async def close(self, code: int, reason: str) -> None:
        self.fake.closes.append((code, reason))
        await self.ws.close(code, reason)

    async def _perform(self, action: Action) -> None:
        if isinstance(action, SpeechStartedAt):
            await self.send(
                {"type": "SpeechStarted", "channel": [0, 1], "timestamp": action.ms / 1000}
            )
        elif isinstance(action, UtteranceEndAt):
            if self._words_since_utterance_end:
                self._words_since_utterance_end = False
                end = action.last_word_end_ms / 1000
                await self.send({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": end})
        else:
            text = await self._transcribe(action)
            message = results_message(action, text, config=self.config, request_id=self.request_id)
            transcript: str = message["channel"]["alternatives"][0]["transcript"]
            self._words_since_utterance_end |= bool(transcript)
            await self.send(message)
            if action.is_final:
                self.fake.results.append(transcript)

    async def _transcribe(self, action: Transcribe) -> str:
        segment = action.segment
        override = self.fake.transcript_override
        if segment.speech is None:
            return ""
        if isinstance(override, str):
            return override
        if override is not None:
            return override(segment.pcm16, self.stream.rate)
        phrases = self.fake.transcription_phrases
        if action.is_final:
            return await recognize_off_loop(segment.pcm16, self.stream.rate, phrases)
        return await _recognize_interim(segment.pcm16, self.stream.rate, phrases)

    async def _configure(self, data: Message) -> None:
        keyterms: list[str] | None = data.get("keyterms")
        reply: Message = {"type": "ConfigureSuccess", "request_id": self.request_id}
        if keyterms is not None and not self.config.model.startswith("nova-3"):
            reply = {
                "type": "ConfigureFailure",
                "request_id": self.request_id,
                "code": "CONFIGURE_KEYTERMS_NOT_SUPPORTED",
                "description": f"Model {self.config.model!r} does not support keyterms.",
            }
        elif keyterms is not None:
            self.keyterms = tuple(keyterms)
            reply["keyterms"] = keyterms
        await self.send(reply)

    async def _finish(self) -> None:
        metadata = {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": self.stream.sha256,
            "created": self.created,
            "duration": self.stream.duration_s,
            "channels": 1,
        }
        with contextlib.suppress(ConnectionClosed):
            await self.send(metadata)
        self._finished = True
        await self.close(1000, "")


class FakeDeepgramServer(WebsocketFake[Violation, ListenSession]):
    """Async context manager running the fake on ``127.0.0.1`` with an ephemeral port.

    Options (all attributes, settable at any time):
        api_key: the key ``Authorization: Token|Bearer`` must carry (``None``: any); else 401.
        transcription_phrases: restrict pocketsphinx to these phrases (JSGF grammar; give
            distractors) — exact transcripts of espeak speech in ≈10–50 ms, and interims that
            are prefixes of them. Without it the full language model is used (≈0.6 s a
            sentence, about a quarter of the words; interims queue up behind each other).
        transcript_override: a fixed text, or ``(pcm16, rate) -> text`` given the segment's
            audio so far (from 300 ms before the onset), used instead of recognition for
            every segment with speech (interims too).
        interim_every_ms: speech between interim ``Results`` (stream time, default 500).
        idle_timeout_s: wall time without audio or a text message before the ``NET-0001``
            close (1011, :data:`NET_0001_REASON`); Deepgram's is 10 s.
        vad_threshold_rms / vad_speech_ms: energy VAD knobs (PCM16 RMS; loud time needed
            before speech starts).
        refuse_status: answer every handshake with this HTTP status (e.g. 503).
        check_violations: leaving the ``async with`` block raises if :attr:`violations` is not
            empty (tests that provoke them call :meth:`take_violations`).

    Observability (across connections): :attr:`handshakes`, :attr:`sessions` (per connection:
    ``config``, ``request_id``, ``received``, ``sent``, ``audio_bytes``, ``keyterms``),
    :attr:`audio_bytes`, :attr:`received` (valid control messages), :attr:`sent`,
    :attr:`violations`, :attr:`keepalives`, :attr:`finalizes`, :attr:`results` (final
    transcripts, empty ones included), :attr:`closes` (``(code, reason)`` the fake closed
    with), :attr:`connections`, and :meth:`wait_for`.
    """

    _violations_are = "protocol violations"

    def __init__(
        self,
        *,
        api_key: str | None = "dg-test",
        transcription_phrases: Sequence[str] | None = None,
        transcript_override: Override | None = None,
        interim_every_ms: int = 500,
        idle_timeout_s: float = 10.0,
        vad_threshold_rms: float = 300.0,
        vad_speech_ms: int = 60,
        refuse_status: int | None = None,
        check_violations: bool = True,
    ) -> None:
        super().__init__(check_violations=check_violations)
        self.api_key = api_key
        self.transcription_phrases = tuple(transcription_phrases) if transcription_phrases else None
        self.transcript_override = transcript_override
        self.interim_every_ms = interim_every_ms
        self.idle_timeout_s = idle_timeout_s
        self.vad_threshold_rms = vad_threshold_rms
        self.vad_speech_ms = vad_speech_ms
        self.refuse_status = refuse_status

        self.handshakes: list[Handshake] = []
        self.sessions: list[ListenSession] = []
        self.keepalives: list[Mark] = []
        self.finalizes: list[Mark] = []
        self.results: list[str] = []
        self.closes: list[tuple[int, str]] = []

        self._accepted: dict[ServerConnection, tuple[ListenConfig, str]] = {}

    # ------------------------------------------------------------------ lifecycle

    def _warm_up(self) -> None:
        warm_up_recognizer()
        openai_audio._pool().submit(_worker_ready)

    @property
    def base_url(self) -> str:
        """``ws://127.0.0.1:PORT`` — the SDK environment's ``production``."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/v1/listen`` (add the query)."""
        return f"{self.base_url}/v1/listen"

    @property
    def environment(self) -> DeepgramClientEnvironment:
        """For ``AsyncDeepgramClient(environment=…)`` (REST and agent URLs point here too)."""
        http_url = f"http://127.0.0.1:{self.port}"
        return DeepgramClientEnvironment(
            base=http_url, production=self.base_url, agent=self.base_url, agent_rest=http_url
        )

    @property
    def audio_bytes(self) -> list[int]:
        """Audio bytes received, per connection in order."""
        return [session.audio_bytes for session in self.sessions]

    # ------------------------------------------------------------------ handshake

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        request_id = str(uuid.uuid4())
        url = urlsplit(request.path)
        query = parse_qs(url.query, keep_blank_values=True)
        status, code, message = 101, "", ""
        problems: list[str] = []
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if self.refuse_status is not None:
            status, code, message = self.refuse_status, "REFUSED", "Refused (test)."
        elif url.path.rstrip("/") != "/v1/listen":
            status, code, message = 404, "NOT_FOUND", "Not found."
        elif scheme not in ("Token", "Bearer") or not key or key != (self.api_key or key):
            status, code, message = 401, "INVALID_AUTH", "Invalid credentials."
        else:
            try:
                config, problems = parse_listen_query(query)
                self._accepted[connection] = (config, request_id)
            except QueryRejected as exc:
                status, code, message = 400, exc.err_code, str(exc)
        self.handshakes.append(Handshake(url.path, query, request.headers, request_id, status))
        for problem in problems:
            self.violations.append(Violation("INVALID_QUERY", problem, request.path))
        self.notify()
        if status == 101:
            return None
        body = json.dumps({"err_code": code, "err_msg": message, "request_id": request_id})
        response = connection.respond(http.HTTPStatus(status), body)
        response.headers["Content-Type"] = "application/json"
        response.headers["dg-request-id"] = request_id
        response.headers["dg-error"] = message
        return response

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        accepted = self._accepted.get(connection)
        if accepted is not None and response.status_code == 101:
            response.headers["dg-request-id"] = accepted[1]
        return None

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        config, request_id = self._accepted.pop(ws)
        session = ListenSession(self, ws, config, request_id)
        self.sessions.append(session)
        await self._serve(session)

    async def _close(self, connection: ListenSession, code: int, reason: str) -> None:
        await connection.close(code, reason)  # recorded in :attr:`closes`

    async def send_raw(self, text: str) -> None:
        """Send ``text`` as is (e.g. malformed JSON) on every open stream."""
        for session in list(self._live):
            with contextlib.suppress(ConnectionClosed):
                await session.ws.send(text)

    async def send_unknown_type(self, type_: str = "FakeUnknownType") -> None:
        """Send a well-formed message of a type the SDK does not know on every open stream."""
        for session in list(self._live):
            with contextlib.suppress(ConnectionClosed):
                await session.send({"type": type_, "detail": "from the fake"}, validate=False)

    # ------------------------------------------------------------------ observability

    def record_sent(self, message: Message) -> None:
        self.sent.append((time.monotonic(), message))
        self.notify()

    def record_received(self, message: Message) -> None:
        self.received.append((time.monotonic(), message))
        self.notify()
