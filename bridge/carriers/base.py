"""What every carrier codec offers the runtime: wire frames in → session events, actions out.

A codec is sans-I/O: no socket, no clock. :meth:`CarrierCodec.parse` returns one session event
(or a :data:`CarrierSignal` for the runtime, or ``None`` for frames that carry nothing the
session needs) and raises :class:`~bridge.errors.CarrierProtocolError` for anything malformed;
the codec stays usable after an error (the runtime journals it and carries on).

Frames out are :data:`Frame`: ``str`` goes out as a websocket text frame, ``bytes`` as a binary
frame (or raw bytes on a TCP carrier).

**Playback accounting.** A codec with ``playback = "marks"`` builds mark frames the carrier
answers when the audio before them has played (Twilio/Telnyx/Exotel ``mark``, Plivo
``checkpoint``, Vonage ``notify``, jambonz ``mark``, Asterisk ``MARK_MEDIA``). A codec with
``playback = "paced"`` has no such thing (AudioSocket): the runtime sends its audio on an
absolute schedule at real time and answers the session's marks itself when the audio before
them has been sent (:mod:`bridge.runtime.link`).
"""

from __future__ import annotations

import abc
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from bridge.audio.transcode import bytes_per_ms, silence_byte
from bridge.errors import CarrierProtocolError, CarrierStartRefused
from bridge.session import events as ev

__all__ = [
    "DTMF_KEYS",
    "MAX_FRAME_CHARS",
    "CarrierCodec",
    "CarrierReply",
    "CarrierSignal",
    "FlowPaused",
    "FlowResumed",
    "Frame",
    "SampleAligner",
    "audio_format",
    "bytes_per_ms",
    "caller_audio",
    "check_sequence_number",
    "describe",
    "field_object",
    "field_text",
    "inbound_payload",
    "json_frame",
    "silence_byte",
]  # fmt: skip

DTMF_KEYS = frozenset("0123456789*#ABCD")
"""The keys a caller can press (a phone's twelve and the A–D column)."""

MAX_FRAME_CHARS = 256 * 1024
"""Largest control/media frame a JSON carrier may send (far above any real one)."""

Frame = str | bytes
"""One frame to the carrier: text (``str``) or binary (``bytes``)."""


@dataclass(frozen=True, slots=True)
class FlowPaused:
    """The carrier's buffer is full: hold agent audio (none lost) until :class:`FlowResumed`."""


@dataclass(frozen=True, slots=True)
class FlowResumed:
    """The carrier takes agent audio again."""


@dataclass(frozen=True, slots=True)
class CarrierReply:
    """A frame the carrier expects in answer (e.g. a pong); the runtime sends it as is."""

    frame: Frame


CarrierSignal = FlowPaused | FlowResumed | CarrierReply
"""What a codec tells the runtime rather than the session."""


def audio_format(encoding: str, sample_rate: int) -> str:
    """The bridge's format string for a carrier's audio (``"pcmu"``, ``"pcm16/16000"``…).

    ``encoding`` is ``"pcmu"``, ``"pcma"`` or ``"pcm16"`` (signed 16-bit little-endian);
    G.711 is always 8 kHz, 16-bit PCM may be 8, 16 or 24 kHz. Anything else is a
    :class:`~bridge.errors.CarrierProtocolError` naming what was asked.
    """
    if encoding in ("pcmu", "pcma"):
        if sample_rate != 8000:
            raise CarrierStartRefused(f"{encoding} at {sample_rate} Hz: G.711 is 8000 Hz only")
        return encoding
    if encoding == "pcm16" and sample_rate in (8000, 16000, 24000):
        return f"pcm16/{sample_rate}"
    raise CarrierStartRefused(
        f"audio {encoding} at {sample_rate} Hz is not supported "
        "(μ-law or A-law at 8000 Hz, 16-bit PCM at 8000, 16000 or 24000 Hz)"
    )


class CarrierCodec(abc.ABC):
    carrier: str
    """The carrier's name in the journal ("twilio", "telnyx", …)."""

    playback: Literal["marks", "paced"] = "marks"
    """How the session learns what the caller heard (see the module docstring)."""

    frame_ms: int = 20
    """Duration of each agent audio chunk handed to :meth:`media`."""

    max_marks: int | None = None
    """Most unanswered marks the carrier keeps (``None``: no limit). jambonz silently drops
    marks past 30: the link holds later frames, in order, until answers make room."""

    @abc.abstractmethod
    def parse(self, data: str | bytes) -> ev.CarrierEvent | CarrierSignal | None:
        """One frame from the carrier."""

    @abc.abstractmethod
    def media(self, payload: bytes) -> Frame:
        """The frame that plays ``payload`` (carrier audio format) to the caller."""

    def mark(self, name: str) -> Frame | None:
        """The frame asking the carrier to report when playback reaches this point.

        ``None`` for a paced codec: the runtime answers marks itself.
        """
        return None

    def clear(self) -> Frame | None:
        """The frame that drops every piece of audio not yet played (``None``: nothing to say)."""
        return None

    def hangup(self) -> Frame | None:
        """The frame that ends the call from our side, sent before the socket closes."""
        return None


def json_frame(data: str | bytes) -> dict[str, Any]:
    """One JSON carrier frame as an object, or ``CarrierProtocolError`` saying what is wrong."""
    if len(data) > MAX_FRAME_CHARS:
        raise CarrierProtocolError(f"frame of {len(data)} bytes is larger than allowed")
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CarrierProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise CarrierProtocolError("frame is not a JSON object")
    return message


def describe(value: object) -> str:
    """A peer's value for an error message: short, and never a deep ``repr`` (a JSON nesting of
    a thousand levels would make ``repr`` raise ``RecursionError``)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return repr(value)[:60]
    return f"<{type(value).__name__}>"


def field_object(message: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if not isinstance(value, dict):
        raise CarrierProtocolError(f"{key!r} must be an object")
    return value


def field_text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str):
        raise CarrierProtocolError(f"{key!r} must be a string")
    return value


def check_sequence_number(message: Mapping[str, Any], key: str) -> None:
    """``message[key]``, when present, is a whole number (a digit string is tolerated too)."""
    value = message.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return
    raise CarrierProtocolError(f"{key} {describe(value)} is not a number")


def inbound_payload(media: Mapping[str, Any]) -> bytes | None:
    """The caller's audio of a JSON ``media`` object (base64 ``payload``), or ``None`` for the
    ``outbound`` track (our own audio, when the carrier streams both tracks)."""
    track = media.get("track", "inbound")
    if track == "outbound":
        return None
    if track != "inbound":
        raise CarrierProtocolError(f"media track {describe(track)} is neither inbound nor outbound")
    try:
        return binascii.a2b_base64(field_text(media, "payload"), strict_mode=True)
    except (binascii.Error, ValueError):
        raise CarrierProtocolError("media payload is not valid base64") from None


def caller_audio(media: Mapping[str, Any], aligner: SampleAligner | None) -> ev.CallerAudio | None:
    """The caller's audio of a JSON ``media`` object (see :func:`inbound_payload`), cut to
    whole 16-bit samples by ``aligner`` (``None`` for 8-bit G.711); ``None`` if nothing is left."""
    payload = inbound_payload(media)
    if payload is None:
        return None
    if aligner is not None:
        payload = aligner.align(payload)
    return ev.CallerAudio(payload) if payload else None


class SampleAligner:
    """Whole 16-bit samples only: an odd trailing byte waits for the next payload."""

    __slots__ = ("_odd",)

    def __init__(self) -> None:
        self._odd = b""

    def align(self, payload: bytes) -> bytes:
        if self._odd:
            payload = self._odd + payload
        cut = len(payload) - len(payload) % 2
        payload, self._odd = payload[:cut], payload[cut:]
        return payload
