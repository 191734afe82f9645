"""A fake ElevenLabs streaming text-to-speech API on loopback, for tests.

It serves the two HTTP streaming endpoints the bridge uses, so the official SDK (or the
bridge's own client) can talk to it unchanged::

    async with FakeElevenLabsTTS(api_key="k") as fake:
        client = AsyncElevenLabs(api_key="k", base_url=fake.base_url)
        async for chunk in client.text_to_speech.stream_with_timestamps(
            "voice", text="Hello.", model_id="eleven_flash_v2_5", output_format="ulaw_8000"
        ):
            ...
    # leaving the block fails the test if a request was invalid (fake.violations)

* ``POST /v1/text-to-speech/{voice_id}/stream``: raw audio, chunked.
* ``POST /v1/text-to-speech/{voice_id}/stream/with-timestamps``: one JSON object per line,
  ``{"audio_base64", "alignment", "normalized_alignment"}`` — the SDK's
  ``StreamingAudioChunkWithTimestampsResponse``; every line is validated against it first.

What it checks: ``xi-api-key`` (401 ``invalid_api_key``), the voice id (404
``voice_not_found`` when :attr:`~FakeElevenLabsTTS.voices` is set), the query (``output_format``
from the SDK's own literal list, ``optimize_streaming_latency`` 0–4, ``enable_logging``) and the
JSON body against :class:`TTSBody` — a strict copy of the SDK method's parameters, nested
models derived from the SDK's own. Unknown keys anywhere are refused: 422 with FastAPI's
``{"detail": [{"type", "loc", "msg", "input"}]}`` and an entry in :attr:`violations`.

What it does: espeak-ng speech of the text (:mod:`.espeak_timing`) in the requested format,
streamed in ``chunk_ms`` pieces faster than real time; character alignment from espeak-ng's own
word events, relative to the start of the request's audio; each line carries the characters
that start within its audio. ``normalized_alignment`` equals ``alignment`` (no normaliser).

Not modelled: MP3/Opus output (422 saying so), request stitching, ``voice_settings`` effects,
the websocket ``stream-input`` API, history headers. A missing ``output_format`` means
``ulaw_8000`` here (``default_output_format``); the real API's default is ``mp3_44100_128`` —
assert on :attr:`requests` if the query matters.

The streaming machinery (:class:`LiveStream`, :class:`StreamAbort`, :func:`pace` …) and the
serving lifecycle live in :mod:`.http_stream`, shared with :mod:`.openai_chat`; the helpers are
re-exported here.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
import itertools
import json
import math
import time
import typing
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from elevenlabs.text_to_speech.raw_client import AsyncRawTextToSpeechClient
from elevenlabs.text_to_speech.types import TextToSpeechStreamRequestOutputFormat
from elevenlabs.types import (
    EffectsSpecInput,
    PronunciationDictionaryVersionLocator,
    StreamingAudioChunkWithTimestampsResponse,
    VoiceSettings,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .common import audioop, speech
from .espeak_timing import character_times, timed_speech
from .http_stream import (
    HttpFake,
    LiveStream,
    Outcome,
    RequestOutcome,
    StreamAbort,
    hang_forever,
    pace,
    quiet_stream_aborts,
    read_body,
)

__all__ = [
    "API_OUTPUT_FORMATS",
    "SUPPORTED_OUTPUT_FORMATS",
    "FakeElevenLabsTTS",
    "LiveStream",
    "Outcome",
    "Rendered",
    "StreamAbort",
    "TTSBody",
    "TTSQuery",
    "TTSRequest",
    "TTSViolation",
    "hang_forever",
    "pace",
    "quiet_stream_aborts",
    "render",
    "sdk_body_parameters",
    "timestamp_lines",
]

# --------------------------------------------------------------------------- request schema

API_OUTPUT_FORMATS: tuple[str, ...] = typing.get_args(
    typing.get_args(TextToSpeechStreamRequestOutputFormat)[0]
)
"""Every ``output_format`` the SDK knows (its literal list; the SDK type also admits ``Any``)."""

SUPPORTED_OUTPUT_FORMATS: tuple[str, ...] = tuple(
    f for f in API_OUTPUT_FORMATS if f.startswith("pcm_") or f in ("ulaw_8000", "alaw_8000")
)
"""What the fake can render: PCM16 at any listed rate, μ-law and A-law at 8 kHz."""

_FORBID = pydantic.ConfigDict(extra="forbid")


def _strict(model: type[pydantic.BaseModel]) -> Any:
    """A copy of an SDK model that refuses unknown keys (the SDK's own allow them)."""
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in model.model_fields.items()
    }
    return pydantic.create_model(f"Strict{model.__name__}", __config__=_FORBID, **fields)


_VoiceSettings = _strict(VoiceSettings)
_Locator = _strict(PronunciationDictionaryVersionLocator)
_Effects = _strict(EffectsSpecInput)


class TTSBody(pydantic.BaseModel):
    """The JSON body of both streaming endpoints: the SDK method's body parameters, strictly.

    ``tests/fakes/test_fake_tts_llm.py`` checks the field names against the SDK's signature.
    """

    model_config = _FORBID

    text: str = pydantic.Field(min_length=1)
    model_id: str | None = None
    language_code: str | None = None
    voice_settings: _VoiceSettings | None = None  # type: ignore[valid-type]
    pronunciation_dictionary_locators: list[_Locator] | None = pydantic.Field(  # type: ignore[valid-type]
        None, max_length=3
    )
    seed: int | None = pydantic.Field(None, ge=0, le=4294967295)
    previous_text: str | None = None
    next_text: str | None = None
    previous_request_ids: list[str] | None = pydantic.Field(None, max_length=3)
    next_request_ids: list[str] | None = pydantic.Field(None, max_length=3)
    use_pvc_as_ivc: bool | None = None
    apply_text_normalization: Literal["auto", "on", "off"] | None = None
    apply_language_text_normalization: bool | None = None
    audio_effects: _Effects | None = None  # type: ignore[valid-type]


OutputFormat = Literal[API_OUTPUT_FORMATS]  # type: ignore[valid-type]


class TTSQuery(pydantic.BaseModel):
    """The query string of both streaming endpoints."""

    model_config = _FORBID

    output_format: OutputFormat | None = None
    optimize_streaming_latency: int | None = pydantic.Field(None, ge=0, le=4)
    enable_logging: bool | None = None


def sdk_body_parameters() -> set[str]:
    """Body parameter names of the SDK's ``stream`` method (query and options left out)."""
    signature = inspect.signature(AsyncRawTextToSpeechClient.stream)
    not_body = {"self", "voice_id", "request_options", *TTSQuery.model_fields}
    return {name for name in signature.parameters if name not in not_body}


# --------------------------------------------------------------------------- audio (pure)


@dataclass(frozen=True)
class Rendered:
    """Speech in one output format, with each character's start and end (seconds)."""

    audio: bytes
    rate: int
    sample_bytes: int
    starts: tuple[float, ...]
    ends: tuple[float, ...]

    def chunk_bytes(self, chunk_ms: int) -> int:
        return max(self.sample_bytes, self.rate * chunk_ms // 1000 * self.sample_bytes)


@functools.lru_cache(maxsize=128)
def render(text: str, output_format: str) -> Rendered:
    """espeak-ng speech of ``text`` in ``output_format`` (one of SUPPORTED_OUTPUT_FORMATS)."""
    codec, _, rate_text = output_format.partition("_")
    rate = int(rate_text)
    spoken = timed_speech(text)
    pcm = speech.resample_pcm16(spoken.pcm, spoken.rate, rate)
    if codec == "ulaw":
        audio, sample_bytes = audioop.lin2ulaw(pcm, 2), 1
    elif codec == "alaw":
        audio, sample_bytes = audioop.lin2alaw(pcm, 2), 1
    else:
        audio, sample_bytes = pcm, 2
    duration = len(audio) / sample_bytes / rate
    starts, ends = character_times(len(text), spoken.words, duration)
    return Rendered(audio, rate, sample_bytes, tuple(starts), tuple(ends))


def timestamp_lines(text: str, rendered: Rendered, chunk_bytes: int) -> list[tuple[bytes, str]]:
    """The ``/with-timestamps`` body: (audio, JSON line) per chunk of ``chunk_bytes`` audio.

    A character goes in the chunk its start falls in (the last chunk takes any later ones);
    chunks without characters carry ``"alignment": null``. Every line is validated against
    the SDK's ``StreamingAudioChunkWithTimestampsResponse`` (a failure is a bug here).
    """
    pieces = [
        rendered.audio[offset : offset + chunk_bytes]
        for offset in range(0, len(rendered.audio), chunk_bytes)
    ] or [b""]
    chunk_s = chunk_bytes / rendered.sample_bytes / rendered.rate
    members: list[list[int]] = [[] for _ in pieces]
    for index, start in enumerate(rendered.starts):
        members[min(math.floor(start / chunk_s + 1e-9), len(pieces) - 1)].append(index)
    lines: list[tuple[bytes, str]] = []
    for audio, indexes in zip(pieces, members, strict=True):
        alignment = (
            {
                "characters": [text[i] for i in indexes],
                "character_start_times_seconds": [round(rendered.starts[i], 3) for i in indexes],
                "character_end_times_seconds": [round(rendered.ends[i], 3) for i in indexes],
            }
            if indexes
            else None
        )
        line = {
            "audio_base64": base64.b64encode(audio).decode(),
            "alignment": alignment,
            "normalized_alignment": alignment,
        }
        StreamingAudioChunkWithTimestampsResponse.model_validate(line)
        lines.append((audio, json.dumps(line) + "\n"))
    return lines


# --------------------------------------------------------------------------- the fake

Endpoint = Literal["stream", "stream/with-timestamps"]

_MEDIA_TYPES = {"ulaw": "audio/basic", "alaw": "audio/x-alaw-basic", "pcm": "audio/pcm"}
_FAILURES = {
    429: ("too_many_concurrent_requests", "Too many concurrent requests (fake)."),
    503: ("system_busy", "The system is busy (fake)."),
}


@dataclass(frozen=True)
class TTSViolation:
    """A request the real API would have refused (the fake answered 422)."""

    message: str
    errors: list[dict[str, Any]]
    request: TTSRequest


@dataclass
class TTSRequest:
    """One request as received, and what became of it (``status``, ``outcome``,
    ``bytes_sent`` — audio bytes, both endpoints). ``at`` is ``time.monotonic()``."""

    voice_id: str
    endpoint: Endpoint
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    at: float
    status: int = 0
    outcome: RequestOutcome = "streaming"
    bytes_sent: int = 0
    output_format: str = ""


class FakeElevenLabsTTS(HttpFake[TTSViolation, TTSRequest]):
    """Async context manager serving the fake on ``127.0.0.1`` (ephemeral port) via uvicorn.

    Options:
        api_key: the ``xi-api-key`` accepted (``None``: any non-empty key).
        voices: known voice ids (``None``: any id).
        chunk_ms: audio per chunk / line (default 100 ms).
        realtime_factor: how much faster than real time chunks are sent (default 10; 0 = no
            pacing, 1 = real time).
        first_byte_latency_s: pause after the response headers, before the first chunk.
        default_output_format: used when the query has none (default ``ulaw_8000``).
        check_violations: leaving the block raises if :attr:`violations` is not empty.

    Failure knobs, read live (set them at any time, even mid-stream):
        fail_status: answer requests with this status (429, 500, 503 …) and an ElevenLabs
            error body; ``fail_times``: only for that many requests, then reset (``None``: until
            cleared).
        hang_after_bytes: stop sending after this many audio bytes and keep the connection
            open (``/stream``: exactly; ``/with-timestamps``: the whole lines that fit).
        abort_after_bytes: the same, then drop the connection (the client sees a truncated
            body).

    Observability: :attr:`requests` (:class:`TTSRequest`), :attr:`violations`,
    :attr:`cancelled` (requests whose client left before the end), :attr:`bytes_sent` (audio,
    all requests), :attr:`internal_errors`, :meth:`wait_for_request`.
    """

    _violations_are = "invalid TTS requests"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        voices: Collection[str] | None = None,
        chunk_ms: int = 100,
        realtime_factor: float = 10.0,
        first_byte_latency_s: float = 0.0,
        default_output_format: str = "ulaw_8000",
        fail_status: int | None = None,
        fail_times: int | None = None,
        hang_after_bytes: int | None = None,
        abort_after_bytes: int | None = None,
        check_violations: bool = True,
    ) -> None:
        super().__init__(
            fail_status=fail_status, fail_times=fail_times, check_violations=check_violations
        )
        self.api_key = api_key
        self.voices = set(voices) if voices is not None else None
        self.chunk_ms = chunk_ms
        self.realtime_factor = realtime_factor
        self.first_byte_latency_s = first_byte_latency_s
        self.default_output_format = default_output_format
        self.hang_after_bytes = hang_after_bytes
        self.abort_after_bytes = abort_after_bytes

        self.bytes_sent = 0

        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` — the SDK's ``base_url`` (it adds ``/v1/...``)."""
        return self._http_url()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/text-to-speech/{voice_id}/stream", self._stream, methods=["POST"]),
                Route(
                    "/v1/text-to-speech/{voice_id}/stream/with-timestamps",
                    self._stream,
                    methods=["POST"],
                ),
            ]
        )

    # ------------------------------------------------------------------ requests

    async def _stream(self, request: Request) -> Response:
        body = await read_body(request)
        endpoint: Endpoint = (
            "stream/with-timestamps" if request.url.path.endswith("/with-timestamps") else "stream"
        )
        record = TTSRequest(
            voice_id=request.path_params["voice_id"],
            endpoint=endpoint,
            query=dict(request.query_params),
            body=body,
            headers=dict(request.headers),
            at=time.monotonic(),
        )
        refusal = self._admit(record)
        if refusal is not None:
            return refusal
        text: str = body["text"]
        rendered = await asyncio.to_thread(render, text, record.output_format)
        record.status = 200
        codec = record.output_format.partition("_")[0]
        if endpoint == "stream":
            chunks = self._audio_chunks(record, rendered)
            media_type = _MEDIA_TYPES[codec]
        else:
            chunks = self._timestamp_chunks(record, text, rendered)
            media_type = "application/json"
        return LiveStream(
            chunks,
            media_type=media_type,
            on_end=functools.partial(self._ended, record),
            tasks=self._tasks,
            headers={
                "request-id": f"fake{next(self._ids):06d}",
                "x-character-count": str(len(text)),
            },
        )

    def _check(self, record: TTSRequest) -> Response | None:
        """Refuse the request as the API would, or ``None`` to go ahead."""
        key = record.headers.get("xi-api-key", "")
        if not key or (self.api_key is not None and key != self.api_key):
            return _detail(401, "invalid_api_key", "Invalid API key (fake).")
        try:
            query = TTSQuery.model_validate(record.query)
        except pydantic.ValidationError as exc:
            return self._invalid(record, exc, "query")
        if not isinstance(record.body, dict):
            return self._refuse(
                record,
                [{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error"}],
            )
        try:
            TTSBody.model_validate(record.body)
        except pydantic.ValidationError as exc:
            return self._invalid(record, exc, "body")
        record.output_format = query.output_format or self.default_output_format
        if record.output_format not in SUPPORTED_OUTPUT_FORMATS:
            return _detail(
                422,
                "unsupported_output_format",
                f"The fake cannot render {record.output_format!r}; it renders "
                f"{', '.join(SUPPORTED_OUTPUT_FORMATS)}.",
            )
        if self.voices is not None and record.voice_id not in self.voices:
            return _detail(
                404, "voice_not_found", f"A voice with voice_id {record.voice_id} was not found."
            )
        status = self._failure_due()
        if status is not None:
            name, message = _FAILURES.get(status, ("internal_server_error", "Server error (fake)."))
            return _detail(status, name, message)
        return None

    def _invalid(
        self, record: TTSRequest, exc: pydantic.ValidationError, where: str
    ) -> JSONResponse:
        errors = [
            {"type": e["type"], "loc": [where, *e["loc"]], "msg": e["msg"], "input": e["input"]}
            for e in exc.errors(include_url=False, include_context=False)
        ]
        return self._refuse(record, errors)

    def _refuse(self, record: TTSRequest, errors: list[dict[str, Any]]) -> JSONResponse:
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])
        self.violations.append(TTSViolation(f"{where}: {first['msg']}", errors, record))
        content = json.loads(json.dumps({"detail": errors}, default=str))
        return JSONResponse(content, status_code=422)

    # ------------------------------------------------------------------ streaming

    def _limit(self) -> tuple[int, bool] | None:
        """(audio byte limit, abort?) from the live knobs; abort wins a tie."""
        hang, abort = self.hang_after_bytes, self.abort_after_bytes
        if abort is not None and (hang is None or abort <= hang):
            return abort, True
        if hang is not None:
            return hang, False
        return None

    def _count(self, record: TTSRequest, size: int) -> None:
        record.bytes_sent += size
        self.bytes_sent += size

    async def _audio_chunks(self, record: TTSRequest, rendered: Rendered) -> AsyncIterator[bytes]:
        size = rendered.chunk_bytes(self.chunk_ms)
        per_s = rendered.rate * rendered.sample_bytes
        await asyncio.sleep(self.first_byte_latency_s)
        t0 = time.monotonic()
        for offset in range(0, len(rendered.audio), size):
            await asyncio.sleep(pace(t0, offset / per_s, self.realtime_factor))
            data = rendered.audio[offset : offset + size]
            limit = self._limit()
            if limit is not None and record.bytes_sent + len(data) > limit[0]:
                allowed = max(0, limit[0] - record.bytes_sent)
                if allowed:
                    self._count(record, allowed)
                    yield data[:allowed]
                await _stop(limit[1])
            self._count(record, len(data))
            yield data

    async def _timestamp_chunks(
        self, record: TTSRequest, text: str, rendered: Rendered
    ) -> AsyncIterator[bytes]:
        lines = timestamp_lines(text, rendered, rendered.chunk_bytes(self.chunk_ms))
        per_s = rendered.rate * rendered.sample_bytes
        await asyncio.sleep(self.first_byte_latency_s)
        t0 = time.monotonic()
        offset = 0
        for audio, line in lines:
            await asyncio.sleep(pace(t0, offset / per_s, self.realtime_factor))
            limit = self._limit()
            if limit is not None and record.bytes_sent + len(audio) > limit[0]:
                await _stop(limit[1])
            self._count(record, len(audio))
            offset += len(audio)
            yield line.encode()


async def _stop(abort: bool) -> typing.NoReturn:
    if abort:
        raise StreamAbort("abort_after_bytes")
    await hang_forever()


def _detail(status: int, name: str, message: str) -> JSONResponse:
    """ElevenLabs' error body: ``{"detail": {"status": ..., "message": ...}}``."""
    return JSONResponse({"detail": {"status": name, "message": message}}, status_code=status)
