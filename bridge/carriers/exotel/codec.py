"""Exotel Voicebot applet (bidirectional stream), sans-I/O.

Inbound (Exotel → bridge; snake_case, ``sequence_number`` a string): ``connected``, ``start``
(``stream_sid``, ``call_sid``, ``account_sid``, ``from``/``to``, ``custom_parameters``,
``media_format`` with ``sample_rate`` as a string), ``media`` (base64 ``payload``, ``chunk``,
``timestamp``), ``dtmf``, ``mark`` (echoed once the audio before it has played), ``stop``.
Outbound: ``media``, ``mark``, ``clear``, each with the ``stream_sid``.

Audio: the base protocol is raw 16-bit little-endian PCM, mono, 8 kHz; the applet's URL may ask
for 16 or 24 kHz (``?sample-rate=16000``), and the beta extension adds μ-law 8 kHz
(``audio/x-mulaw;rate=8000``). The start's ``media_format`` says what the stream carries; the
URL's rate is only the fallback when it does not. 16-bit payloads are kept sample-aligned (an odd
trailing byte waits for the next payload).

**Outbound chunk size.** Exotel plays a ``media`` only if its audio is a multiple of 320 bytes,
at least 3.2 KB and at most 100 KB; other sizes leave gaps. Its guide writes the minimum as
"3.2 KB (100 ms)", which is 100 ms only at 16 kHz, so both readings are honoured: the codec's
:attr:`~ExotelCodec.frame_ms` is set at ``start`` to the shortest duration that is ≥ 100 ms,
≥ 3200 bytes and a multiple of 320 bytes in the stream's format (:func:`chunk_ms`: 200 ms at
8 kHz, 100 ms at 16 and 24 kHz, 400 ms for μ-law). The session cuts agent audio into chunks of
exactly that size and pads the last chunk of a response with silence, so every ``media`` the
bridge sends is valid. A mark follows every chunk; between two mark echoes the session's
heard-audio clock interpolates with the wall clock, so barge-in precision does not grow with the
chunk size.

**Hang-up.** Exotel has no in-band or REST hang-up for the stream: closing the websocket ends
the Voicebot applet and the call flow moves on to the next applet (put a Hangup applet there to
end the call). :meth:`~ExotelCodec.hangup` therefore returns ``None`` and the runtime just closes.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from bridge.carriers.base import (
    DTMF_KEYS,
    CarrierCodec,
    SampleAligner,
    audio_format,
    bytes_per_ms,
    caller_audio,
    check_sequence_number,
    field_object,
    field_text,
    json_frame,
)
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

__all__ = [
    "CHUNK_MULTIPLE", "MAX_CHUNK_BYTES", "MIN_CHUNK_BYTES", "MIN_CHUNK_MS", "ExotelCodec",
    "chunk_ms", "parse_encoding",
]  # fmt: skip

MIN_CHUNK_BYTES = 3200
CHUNK_MULTIPLE = 320
MAX_CHUNK_BYTES = 100_000
"""100 KB, read as the smaller (decimal) figure."""
MIN_CHUNK_MS = 100

_PCM16 = {"audio/x-raw", "raw", "slin", "audio/l16", "l16", "audio/x-l16", "pcm", "linear16"}
_ULAW = {"audio/x-mulaw", "mulaw", "ulaw", "pcmu", "audio/pcmu"}


def chunk_ms(fmt: str) -> int:
    """The shortest chunk Exotel accepts in format ``fmt``, in milliseconds (see module doc)."""
    rate = bytes_per_ms(fmt)
    ms = MIN_CHUNK_MS
    while rate * ms < MIN_CHUNK_BYTES or (rate * ms) % CHUNK_MULTIPLE:
        ms += 1  # ends: every multiple of 320 ms is a multiple of 320 bytes
    return ms


def parse_encoding(raw: object) -> tuple[str, int | None]:
    """Exotel's ``encoding`` → (``"pcm16"`` | ``"pcmu"``, the ``;rate=`` it names or None).

    Absent means the base protocol (raw 16-bit PCM). Anything else is a
    :class:`CarrierProtocolError` naming it.
    """
    if raw is None or raw == "":
        return "pcm16", None
    if not isinstance(raw, str):
        raise CarrierProtocolError("media_format.encoding must be a string")
    name, _, options = raw.partition(";")
    rate: int | None = None
    for option in options.split(";"):
        key, _, value = option.partition("=")
        if key.strip().lower() == "rate":
            rate = _rate(value.strip(), "encoding rate")
    kind = name.strip().lower()
    if kind in _PCM16:
        return "pcm16", rate
    if kind in _ULAW:
        return "pcmu", rate
    raise CarrierProtocolError(
        f"Exotel encoding {raw!r} is not supported: stream raw 16-bit PCM (8, 16 or 24 kHz) or "
        "audio/x-mulaw;rate=8000"
    )


def _rate(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 6:
        return int(value)
    raise CarrierProtocolError(f"{what} {value!r} is not a number of Hz")


class ExotelCodec(CarrierCodec):
    """Parser and builder for one Exotel voicebot stream.

    ``url_sample_rate`` is the ``sample-rate`` query parameter of the applet's URL (a string, as
    it came), used only when the start's ``media_format`` names no rate.
    """

    carrier = "exotel"
    frame_ms = 200  # 8 kHz 16-bit PCM until the start says otherwise

    def __init__(self, url_sample_rate: str | None = None) -> None:
        self.url_sample_rate = url_sample_rate
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.account_sid: str | None = None
        self.encoding = "pcm16/8000"
        self.started = False
        self.stopped = False
        self._aligner = SampleAligner()
        self._media_prefix = ""
        self._mark_prefix = ""
        self._clear = ""

    # -- inbound -----------------------------------------------------------------------------

    def parse(self, data: str | bytes) -> ev.CarrierEvent | None:
        """Parse one websocket frame from Exotel."""
        message = json_frame(data)
        kind = message.get("event")
        if kind == "media":
            return self._media(message)
        if kind == "mark":
            self._check(message, kind)
            return ev.PlaybackMark(field_text(field_object(message, "mark"), "name"))
        if kind == "dtmf":
            self._check(message, kind)
            digit = field_text(field_object(message, "dtmf"), "digit")
            if len(digit) != 1 or digit not in DTMF_KEYS:
                raise CarrierProtocolError(f"dtmf digit {digit!r} is not a keypad key")
            return ev.CallerDtmf(digit)
        if kind == "start":
            return self._start(message)
        if kind == "stop":
            check_sequence_number(message, "sequence_number")
            self.stopped = True
            return ev.CallerHangup("Exotel stopped the stream")
        if kind == "connected":
            return None
        raise CarrierProtocolError(f"unknown event {kind!r}")

    def _start(self, message: dict[str, Any]) -> ev.CallStarted:
        if self.started:
            raise CarrierProtocolError("a second start on the same stream")
        check_sequence_number(message, "sequence_number")
        start = field_object(message, "start")
        stream_sid = start.get("stream_sid", message.get("stream_sid"))
        if not isinstance(stream_sid, str) or not stream_sid:
            raise CarrierProtocolError("start.stream_sid must be a non-empty string")
        fmt = start.get("media_format")
        if fmt is None:
            fmt = {}
        if not isinstance(fmt, dict):
            raise CarrierProtocolError("start.media_format must be an object")
        encoding, rate = parse_encoding(fmt.get("encoding"))
        if fmt.get("sample_rate") is not None:
            rate = _rate(fmt["sample_rate"], "media_format.sample_rate")
        elif rate is None and encoding == "pcm16" and self.url_sample_rate:
            rate = _rate(self.url_sample_rate, "the URL's sample-rate")
        fmt_name = audio_format(encoding, rate or 8000)
        params = _custom_parameters(start.get("custom_parameters"))
        for key in ("from", "to"):
            value = start.get(key)
            if isinstance(value, str) and value:
                params.setdefault(key, value)
        call_sid = start.get("call_sid")
        account_sid = start.get("account_sid")
        self.call_sid = call_sid if isinstance(call_sid, str) else None
        self.account_sid = account_sid if isinstance(account_sid, str) else None
        self.stream_sid = stream_sid
        self.encoding = fmt_name
        self.frame_ms = chunk_ms(fmt_name)
        self.started = True
        sid = orjson.dumps(stream_sid).decode()
        self._media_prefix = '{"event":"media","stream_sid":' + sid + ',"media":{"payload":"'
        self._mark_prefix = '{"event":"mark","stream_sid":' + sid + ',"mark":{"name":'
        self._clear = '{"event":"clear","stream_sid":' + sid + "}"
        return ev.CallStarted(
            call_sid=self.call_sid or "",
            stream_sid=stream_sid,
            custom_parameters=params,
            encoding=fmt_name,
            sample_rate=rate or 8000,
        )

    def _media(self, message: dict[str, Any]) -> ev.CallerAudio | None:
        self._check(message, "media")
        aligner = None if self.encoding == "pcmu" else self._aligner
        return caller_audio(field_object(message, "media"), aligner)

    def _check(self, message: Mapping[str, Any], what: str) -> None:
        if not self.started:
            raise CarrierProtocolError(f"{what} before start")
        check_sequence_number(message, "sequence_number")
        sid = message.get("stream_sid")
        if sid is not None and sid != self.stream_sid:
            raise CarrierProtocolError(f"{what} for another stream {sid!r}")

    # -- outbound ----------------------------------------------------------------------------

    def media(self, payload: bytes) -> str:
        """One ``media``; ``payload`` is one chunk of :attr:`frame_ms` (see the module doc)."""
        self._require_outbound()
        b64 = binascii.b2a_base64(payload, newline=False).decode("ascii")
        return self._media_prefix + b64 + '"}}'

    def mark(self, name: str) -> str:
        """A ``mark``: Exotel echoes it once the audio sent before it has played."""
        self._require_outbound()
        return self._mark_prefix + orjson.dumps(name).decode() + "}}"

    def clear(self) -> str:
        """``clear``: Exotel drops the audio it has not played yet."""
        self._require_outbound()
        return self._clear

    def _require_outbound(self) -> None:
        if not self.started:
            raise CarrierProtocolError("cannot send before the stream started", who="local")


def _custom_parameters(raw: object) -> dict[str, str]:
    """The applet's custom parameters: an object of scalars (made strings)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CarrierProtocolError("start.custom_parameters must be an object")
    params: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            params[key] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            params[key] = str(value)
        else:
            raise CarrierProtocolError(f"custom parameter {key!r} is not a string or a number")
    return params
