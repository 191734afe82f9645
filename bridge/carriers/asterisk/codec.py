"""Asterisk ``chan_websocket`` (20.16 / 21.11 / 22.6 / 23.0 and later), sans-I/O.

The wire (digest §5.6, checked against ``channels/chan_websocket.c``):

* **Media** is BINARY frames of raw codec bytes, both ways, no headers.
* **Control** is TEXT frames, case-sensitive, in one of two formats that Asterisk picks per
  channel (``chan_websocket.conf`` or ``f(json)`` in the dial string):

  - plain text (the legacy default): ``MEDIA_START connection_id:… channel:… channel_id:…
    format:ulaw optimal_frame_size:160 ptime:20``, ``DTMF_END digit:5 channel_id:…``,
    ``MEDIA_MARK_PROCESSED m7``, ``ERROR channel_id:… error_text:…``; our commands
    ``MARK_MEDIA m7``, ``FLUSH_MEDIA``, ``HANGUP``;
  - JSON: ``{"event":"MEDIA_START",…,"channel_variables":{…}}``,
    ``{"event":"MEDIA_MARK_PROCESSED","channel_id":…,"correlation_id":"m7"}``; our commands
    ``{"command":"MARK_MEDIA","correlation_id":"m7"}``, ``{"command":"FLUSH_MEDIA"}``,
    ``{"command":"HANGUP"}``.

  The codec learns the format from ``MEDIA_START`` and answers in it: Asterisk reads commands
  in its channel's format only (a JSON command on a plain-text channel is an unknown command, a
  plain one on a JSON channel an ``ERROR``). A later control frame in the other format is
  refused: it cannot come from the channel that started the stream.

**Playback accounting** (``playback = "marks"``): a ``MARK_MEDIA`` follows each chunk. Asterisk
queues it behind the audio and answers ``MEDIA_MARK_PROCESSED`` when its 20 ms frame timer
reaches it, i.e. when the audio before it has gone to the caller. ``FLUSH_MEDIA`` (barge-in)
empties the queue, marks included, and answers nothing: the session counts those marks flushed.

**Framing**: Asterisk cuts each binary message into ``optimal_frame_size`` frames and *drops* a
remainder; a message over 65,500 bytes closes the socket and hangs the call up. The session's
chunk (:attr:`AsteriskCodec.frame_ms`) is therefore the shortest whole number of milliseconds,
at least ``ptime``, that is a whole number of optimal frames (20 ms for every format Asterisk
ships; 25 ms for a 12.5 ms frame), and :meth:`AsteriskCodec.media` pads anything shorter with
silence rather than let Asterisk drop it.

**Flow control**: ``MEDIA_XOFF`` → :class:`FlowPaused`, ``MEDIA_XON`` → :class:`FlowResumed`; the
runtime's link holds audio in order meanwhile. There is no hang-up event: the socket closes.

**Formats**: ``ulaw``, ``alaw``, ``slin``, ``slin16``, ``slin24`` (slin is signed 16-bit in host
order: little-endian on every platform Asterisk runs on in practice). Anything else — opus,
speex and g729 run in passthrough, where the app must frame and time media itself — is refused
with the dial-string fix; media after a refused start is dropped quietly (the refusal was
reported once and the call ends at the runtime's start timeout).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import orjson

from bridge.carriers.base import (
    DTMF_KEYS,
    MAX_FRAME_CHARS,
    CarrierCodec,
    FlowPaused,
    FlowResumed,
    audio_format,
    bytes_per_ms,
    json_frame,
    silence_byte,
)
from bridge.errors import CarrierProtocolError, CarrierStartRefused
from bridge.session import events as ev

__all__ = ["FORMATS", "MAX_COMMAND_BYTES", "MAX_MESSAGE_BYTES", "AsteriskCodec", "chunk_ms"]

Control = Literal["plain", "json"]
Fields = Mapping[str, object]

FORMATS: dict[str, tuple[str, int]] = {
    "ulaw": ("pcmu", 8000),
    "alaw": ("pcma", 8000),
    "slin": ("pcm16", 8000),
    "slin16": ("pcm16", 16000),
    "slin24": ("pcm16", 24000),
}
"""Asterisk format name → (bridge encoding, sample rate)."""

MAX_MESSAGE_BYTES = 65_500
"""Largest websocket message Asterisk takes; a bigger one closes the socket and the call."""
MAX_COMMAND_BYTES = 128
"""Asterisk ignores (with a warning) any TEXT message longer than this."""
EVENTS = frozenset(
    {
        "MEDIA_START", "MEDIA_MARK_PROCESSED", "DTMF_END", "MEDIA_XOFF", "MEDIA_XON", "STATUS",
        "QUEUE_DRAINED", "MEDIA_BUFFERING_COMPLETED", "ERROR",
    }
)  # fmt: skip
_BARE_ID_EVENTS = ("MEDIA_MARK_PROCESSED", "MEDIA_BUFFERING_COMPLETED")
"""Plain-text events whose only parameter is a bare correlation id (``EVENT <id>``)."""


def chunk_ms(optimal_frame_size: int, rate_bytes_per_ms: int, ptime: int) -> int:
    """Duration of one agent chunk: whole ms, at least ``ptime``, a whole number of frames.

    ``d`` ms is ``d · rate`` bytes, a multiple of ``optimal_frame_size`` exactly when ``d`` is a
    multiple of ``optimal_frame_size / gcd(optimal_frame_size, rate)``. A chunk that cannot fit
    one message (absurd frame sizes) is a :class:`CarrierProtocolError`.
    """
    step = optimal_frame_size // math.gcd(optimal_frame_size, rate_bytes_per_ms)
    ms = step * -(-ptime // step)
    if ms * rate_bytes_per_ms > MAX_MESSAGE_BYTES:
        raise CarrierProtocolError(
            f"optimal_frame_size {optimal_frame_size} with ptime {ptime}: no whole-millisecond "
            f"chunk of whole frames fits one {MAX_MESSAGE_BYTES}-byte message"
        )
    return ms


class AsteriskCodec(CarrierCodec):
    """Parser and builder for one ``chan_websocket`` media connection."""

    carrier = "asterisk"
    max_marks = 750
    """15 s of 20 ms chunks unplayed at most. Asterisk drops whole messages once 1000 frames
    (20 s) are queued, and an XOFF cannot recall a burst already written: holding audio past
    15 s of unanswered marks keeps a long agent turn below that cap."""

    def __init__(self) -> None:
        self.control: Control | None = None  # learnt from MEDIA_START
        self.started = False
        self.refused: str | None = None  # why a MEDIA_START was refused
        self.connection_id = ""
        self.channel = ""
        self.channel_id = ""
        self.asterisk_format = ""
        self.encoding = "pcmu"
        self.optimal_frame_size = 160
        self.ptime = 20
        self.paused = False  # Asterisk said MEDIA_XOFF and not yet MEDIA_XON
        self._sample_bytes = 1
        self._pad = b"\xff"

    # -- inbound -----------------------------------------------------------------------------

    def parse(self, data: str | bytes) -> ev.CarrierEvent | FlowPaused | FlowResumed | None:
        """One websocket frame from Asterisk: binary = caller audio, text = an event."""
        if isinstance(data, bytes):
            return self._audio(data)
        if len(data) > MAX_FRAME_CHARS:
            raise CarrierProtocolError(f"control frame of {len(data)} characters is too large")
        text = data.strip()
        if not text:
            raise CarrierProtocolError("empty control frame")
        control: Control = "json" if text.startswith(("{", "[")) else "plain"
        if self.control is not None and control != self.control:
            raise CarrierProtocolError(
                f"{control} control frame on a {self.control} channel: {text[:60]!r}"
            )
        kind, fields = _json_event(text) if control == "json" else _plain_event(text)
        if kind not in EVENTS:
            raise CarrierProtocolError(f"unknown event {kind[:40]!r}")
        if kind == "MEDIA_START":
            return self._start(fields, control)
        if not self.started:
            raise CarrierProtocolError(f"{kind} before MEDIA_START")
        self._check_channel(fields)
        if kind == "MEDIA_MARK_PROCESSED":
            name = fields.get("correlation_id")
            if not isinstance(name, str) or not name:
                raise CarrierProtocolError("MEDIA_MARK_PROCESSED without a correlation id")
            return ev.PlaybackMark(name)
        if kind == "DTMF_END":
            digit = _text(fields, "digit")
            if digit not in DTMF_KEYS:
                raise CarrierProtocolError(f"DTMF_END digit {digit!r} is not a keypad key")
            return ev.CallerDtmf(digit)
        if kind == "MEDIA_XOFF":
            self.paused = True
            return FlowPaused()
        if kind == "MEDIA_XON":
            self.paused = False
            return FlowResumed()
        if kind == "ERROR":
            raise CarrierProtocolError(f"Asterisk error: {fields.get('error_text') or '(no text)'}")
        return None  # STATUS, QUEUE_DRAINED, MEDIA_BUFFERING_COMPLETED: nothing for the call

    def _audio(self, data: bytes) -> ev.CallerAudio | None:
        if not self.started:
            if self.refused is not None:
                return None  # reported once already; the call ends at the start timeout
            raise CarrierProtocolError("media before MEDIA_START")
        if not data:
            return None
        if len(data) % self._sample_bytes:
            raise CarrierProtocolError(
                f"{self.asterisk_format} frame of {len(data)} bytes is not whole 16-bit samples"
            )
        return ev.CallerAudio(data)

    def _start(self, fields: Fields, control: Control) -> ev.CallStarted:
        if self.started:
            raise CarrierProtocolError("a second MEDIA_START on one connection")
        try:
            return self._accept(fields, control)
        except CarrierProtocolError as exc:
            self.refused = exc.message
            raise

    def _accept(self, fields: Fields, control: Control) -> ev.CallStarted:
        connection_id = _text(fields, "connection_id")
        channel = _optional_text(fields, "channel")
        channel_id = _optional_text(fields, "channel_id")  # absent before 20.17 / 22.7 / 23.1
        name = _text(fields, "format")
        known = FORMATS.get(name)
        if known is None:
            raise CarrierStartRefused(
                f"Asterisk format {name[:40]!r} is not supported: dial the WebSocket channel "
                "with c(ulaw), c(alaw), c(slin), c(slin16) or c(slin24)"
            )
        encoding = audio_format(*known)
        frame_size = _count(fields, "optimal_frame_size", None, MAX_MESSAGE_BYTES)
        ptime = _count(fields, "ptime", 20, 1000)
        sample_bytes = 2 if known[0] == "pcm16" else 1
        if frame_size % sample_bytes:
            raise CarrierProtocolError(
                f"optimal_frame_size {frame_size} is not a whole number of {name} samples"
            )
        frame_ms = chunk_ms(frame_size, bytes_per_ms(encoding), ptime)
        params = _channel_variables(fields.get("channel_variables"))
        self.control, self.started, self.refused = control, True, None
        self.connection_id, self.channel, self.channel_id = connection_id, channel, channel_id
        self.asterisk_format, self.encoding = name, encoding
        self.optimal_frame_size, self.ptime, self.frame_ms = frame_size, ptime, frame_ms
        self._sample_bytes = sample_bytes
        self._pad = bytes([silence_byte(encoding)])
        return ev.CallStarted(
            call_sid=channel_id,
            stream_sid=connection_id,
            custom_parameters=params,
            encoding=encoding,
            sample_rate=known[1],
        )

    def _check_channel(self, fields: Fields) -> None:
        channel_id = fields.get("channel_id")
        if channel_id is None or not self.channel_id:
            return
        if channel_id != self.channel_id:
            raise CarrierProtocolError(
                f"event for channel {str(channel_id)[:60]!r}; this is {self.channel_id!r}"
            )

    # -- outbound ----------------------------------------------------------------------------

    def media(self, payload: bytes) -> bytes:
        """One binary message: ``payload`` padded with silence to whole optimal frames."""
        self._require_outbound()
        short = -len(payload) % self.optimal_frame_size
        if short:
            payload += self._pad * short
        if len(payload) > MAX_MESSAGE_BYTES:
            raise CarrierProtocolError(
                f"media of {len(payload)} bytes is over Asterisk's {MAX_MESSAGE_BYTES}-byte limit",
                who="local",
            )
        return payload

    def mark(self, name: str) -> str:
        """``MARK_MEDIA``: Asterisk answers ``MEDIA_MARK_PROCESSED`` once playback reaches it."""
        self._require_outbound()
        if not name or name != name.strip():
            raise CarrierProtocolError(f"mark name {name!r} would not come back", who="local")
        if self.control == "json":
            frame = orjson.dumps({"command": "MARK_MEDIA", "correlation_id": name}).decode()
        else:
            frame = f"MARK_MEDIA {name}"
        if len(frame.encode()) > MAX_COMMAND_BYTES:
            raise CarrierProtocolError(
                f"MARK_MEDIA for {name[:40]!r}… is over Asterisk's {MAX_COMMAND_BYTES}-byte "
                "command limit",
                who="local",
            )
        return frame

    def clear(self) -> str:
        """``FLUSH_MEDIA``: drop every queued frame and mark (nothing is answered)."""
        self._require_outbound()
        return self._command("FLUSH_MEDIA")

    def hangup(self) -> str | None:
        """``HANGUP``: Asterisk hangs the channel up and closes the socket."""
        return self._command("HANGUP") if self.started else None

    def _command(self, name: str) -> str:
        return '{"command":"' + name + '"}' if self.control == "json" else name

    def _require_outbound(self) -> None:
        if not self.started:
            raise CarrierProtocolError("cannot send before MEDIA_START", who="local")


# -- reading control frames ------------------------------------------------------------------


def _json_event(text: str) -> tuple[str, Fields]:
    message = json_frame(text)
    kind = message.get("event")
    if not isinstance(kind, str):
        if "command" in message:
            raise CarrierProtocolError("a command frame, not an event, came from Asterisk")
        raise CarrierProtocolError("JSON control frame without an 'event' string")
    return kind, message


def _plain_event(text: str) -> tuple[str, Fields]:
    kind, _, rest = text.partition(" ")
    if kind not in EVENTS:
        raise CarrierProtocolError(f"unknown event {kind[:40]!r}")
    rest = rest.strip()
    if kind in _BARE_ID_EVENTS:
        return kind, {"correlation_id": rest} if rest else {}
    if kind == "ERROR":
        head, sep, error_text = rest.partition("error_text:")
        fields = dict(_plain_fields(head)) if sep else {}
        fields["error_text"] = error_text.strip() if sep else rest
        return kind, fields
    return kind, _plain_fields(rest)


def _plain_fields(rest: str) -> dict[str, object]:
    fields: dict[str, object] = {}
    for token in rest.split():
        key, sep, value = token.partition(":")
        if not sep or not key:
            raise CarrierProtocolError(f"malformed plain-text field {token[:40]!r}")
        fields[key] = value
    return fields


def _text(fields: Fields, key: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not value:
        raise CarrierProtocolError(f"{key!r} must be a non-empty string")
    return value


def _optional_text(fields: Fields, key: str) -> str:
    value = fields.get(key, "")
    if not isinstance(value, str):
        raise CarrierProtocolError(f"{key!r} must be a string")
    return value


def _count(fields: Fields, key: str, default: int | None, most: int) -> int:
    """A positive integer field (a JSON number, or digits in plain text), at most ``most``."""
    value = fields.get(key)
    if value is None and default is not None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        number = int(value)
    if number is None or not 0 < number <= most:
        raise CarrierProtocolError(f"{key!r} must be a whole number from 1 to {most}")
    return number


def _channel_variables(raw: object) -> dict[str, str]:
    """Call parameters from JSON ``channel_variables`` (inheritance prefixes ``_``/``__`` cut)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CarrierProtocolError("'channel_variables' must be an object")
    params: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise CarrierProtocolError(f"channel variable {str(key)[:40]!r} is not a string")
        name = str(key).lstrip("_")
        if name:
            params[name] = value
    return params
