"""One carrier's side of a media stream, as the simulated caller speaks it (sans-I/O).

A :class:`CallerWire` builds the frames a carrier sends (its ``start``, 20 ms caller frames,
DTMF, hang-up, mark answers) and parses what a bridge sends back *strictly*: anything the real
carrier would reject or mis-play raises :class:`~bridge.errors.CarrierProtocolError` (the caller
records it as a violation). Wires are written from the carrier's documentation, independently of
the bridge's codecs — a fake that shared the codec under test would agree with its bugs.

Inside the caller everything is μ-law 8 kHz: a wire whose carrier speaks another format converts
at the edge (:attr:`CallerWire.audio_format`), so playback timing and the recorded audio do not
depend on the carrier.
"""

from __future__ import annotations

import abc
import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.audio.transcode import Transcoder, bytes_per_ms, silence_byte
from bridge.errors import CarrierProtocolError

__all__ = [
    "BridgeClear", "BridgeHangup", "BridgeMark", "BridgeMedia", "BridgeMessage", "CallerWire",
    "Frame", "bad", "base64_audio", "json_object", "silence_byte",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class BridgeMedia:
    payload: bytes  # μ-law 8 kHz (converted by the wire if the carrier speaks another format)


@dataclass(frozen=True, slots=True)
class BridgeMark:
    name: str


@dataclass(frozen=True, slots=True)
class BridgeClear:
    pass


@dataclass(frozen=True, slots=True)
class BridgeHangup:
    """The bridge ended the call in band (Asterisk ``HANGUP``, jambonz ``disconnect``…)."""

    reason: str = ""


Frame = str | bytes
"""One frame to the bridge: text (``str``) or binary (``bytes``)."""

BridgeMessage = BridgeMedia | BridgeMark | BridgeClear | BridgeHangup


def bad(problem: str, raw: str | bytes) -> CarrierProtocolError:
    """What a wire raises for a frame its carrier would reject, quoting the frame's start."""
    shown = raw[:80] if isinstance(raw, str) else f"<{len(raw)} bytes>"
    return CarrierProtocolError(f"{problem}: {shown!r}", who="remote")


def json_object(raw: str | bytes, carrier: str) -> dict[str, Any]:
    """A bridge frame that must be a JSON object in a text frame."""
    if isinstance(raw, bytes):
        raise bad(f"binary frame ({carrier} expects JSON text)", raw)
    try:
        message = json.loads(raw)
    except ValueError:
        raise bad("not JSON", raw) from None
    if not isinstance(message, dict):
        raise bad("not a JSON object", raw)
    return message


def base64_audio(payload: object, what: str, raw: str | bytes) -> bytes:
    """The audio of a ``what`` frame's base64 ``payload`` field."""
    if not isinstance(payload, str):
        raise bad(f"{what} without a string payload", raw)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad(f"{what} payload is not valid base64", raw) from None


class CallerWire(abc.ABC):
    """A carrier's protocol from the carrier's side (see the module docstring)."""

    carrier: str
    audio_format = "pcmu"
    """The carrier's audio on the wire, both ways (``"pcmu"``, ``"pcm16/16000"``…)."""
    subprotocols: tuple[str, ...] = ()
    """Websocket subprotocols the carrier offers (and requires the bridge to accept)."""
    transport = "websocket"
    """``"websocket"`` or ``"tcp"`` (AudioSocket)."""
    marks = True
    """The carrier answers marks (False: the bridge paces its audio and counts it itself)."""
    call_sid: str
    """The carrier's id of the call: what the bridge journals as the call's ``call_sid``."""

    def __init__(self) -> None:
        self._to_wire = Transcoder("pcmu", self.audio_format)
        self._from_wire = Transcoder(self.audio_format, "pcmu")
        self.bytes_per_ms = bytes_per_ms(self.audio_format)

    # -- carrier → bridge --------------------------------------------------------------------

    def headers(self, url: str) -> Mapping[str, str]:
        """Extra HTTP headers of the websocket upgrade."""
        return {}

    @abc.abstractmethod
    def opening(self, parameters: Mapping[str, str]) -> list[Frame]:
        """The frames that start the stream (``connected``, ``start``…), carrying ``parameters``."""

    @abc.abstractmethod
    def media(self, ulaw: bytes) -> Frame | list[Frame]:
        """One 20 ms caller frame (160 bytes of μ-law, converted to the wire's format).

        A list when the wire sends several frames (or none) for it: a network that reorders.
        """

    @abc.abstractmethod
    def dtmf(self, digit: str) -> Frame:
        """The caller pressed ``digit``."""

    @abc.abstractmethod
    def hangup(self) -> Frame | None:
        """The last frame when the caller hangs up (``None``: the carrier just closes)."""

    def mark_played(self, name: str) -> Frame | None:
        """The answer when playback reaches the bridge's mark ``name``."""
        return None

    def cleared(self, flushed: list[str]) -> list[Frame]:
        """The answers to a clear; ``flushed`` are the marks it dropped (in order)."""
        return [frame for name in flushed if (frame := self.mark_played(name)) is not None]

    def queue_changed(self, queued_ms: float) -> list[Frame]:
        """Flow control: frames to send now that ``queued_ms`` of agent audio waits to play."""
        return []

    # -- bridge → carrier --------------------------------------------------------------------

    @abc.abstractmethod
    def parse(self, raw: str | bytes) -> list[BridgeMessage]:
        """What one received frame (or TCP read) means, strictly; raises CarrierProtocolError."""

    # -- audio at the edge -------------------------------------------------------------------

    def to_wire(self, ulaw: bytes) -> bytes:
        return self._to_wire.convert(ulaw)

    def from_wire(self, audio: bytes) -> bytes:
        return self._from_wire.convert(audio)
