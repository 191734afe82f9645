"""Asterisk AudioSocket from Asterisk's side (digest §5.7), over raw TCP.

Asterisk sends the call's UUID first (kind ``0x01``), then 20 ms of signed-linear audio every
20 ms (kind ``0x10`` at 8 kHz, ``0x12``/``0x13`` at 16/24 kHz from the channel driver), DTMF as
kind ``0x03`` and ``0x00`` when the caller hangs up. It plays what the application sends *as it
arrives*: there are no marks and no buffer to fill, so the application must pace its audio at
real time. This wire checks exactly that: every audio message must be 20 ms of the call's rate,
and the audio must never run ahead of real time by more than ``max_ahead_ms`` (the caller's
playback queue after each arrival) — a burst would be played late or dropped by a real Asterisk.
"""

from __future__ import annotations

import struct
import uuid as uuid_module
from collections.abc import Mapping

from bridge.errors import CarrierProtocolError
from bridge.simulate.carriers.base import (
    BridgeHangup,
    BridgeMedia,
    BridgeMessage,
    CallerWire,
    Frame,
)

__all__ = ["AudioSocketWire"]

_HEADER = struct.Struct("!BH")
_KINDS = {8000: 0x10, 16000: 0x12, 24000: 0x13}


def _message(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


class AudioSocketWire(CallerWire):
    carrier = "audiosocket"
    transport = "tcp"
    marks = False

    def __init__(self, *, sample_rate: int = 8000, max_ahead_ms: float = 60.0) -> None:
        self.audio_format = f"pcm16/{sample_rate}"
        super().__init__()
        self.kind = _KINDS[sample_rate]
        self.frame_bytes = sample_rate // 50 * 2
        self.uuid = str(uuid_module.uuid4())
        self.call_sid = self.uuid
        self.max_ahead_ms = max_ahead_ms
        self.most_ahead_ms = 0.0  # the largest backlog the bridge's pacing ever left
        self.problems: list[str] = []
        self._buffer = bytearray()

    def opening(self, parameters: Mapping[str, str]) -> list[Frame]:
        if parameters:
            raise ValueError("AudioSocket carries no call parameters, only the UUID")
        return [_message(0x01, uuid_module.UUID(self.uuid).bytes)]

    def media(self, ulaw: bytes) -> Frame:
        return _message(self.kind, self.to_wire(ulaw))

    def dtmf(self, digit: str) -> Frame:
        return _message(0x03, digit.encode("ascii"))

    def hangup(self) -> Frame | None:
        return _message(0x00)

    def queue_changed(self, queued_ms: float) -> list[Frame]:
        self.most_ahead_ms = max(self.most_ahead_ms, queued_ms)
        if queued_ms > self.max_ahead_ms:
            self.problems.append(f"{queued_ms:.0f} ms of audio ahead of real time")
        return []

    def parse(self, raw: str | bytes) -> list[BridgeMessage]:
        if isinstance(raw, str):
            raise CarrierProtocolError("text on an AudioSocket connection", who="remote")
        self._buffer += raw
        out: list[BridgeMessage] = []
        problems: list[str] = []
        while len(self._buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buffer)
            if len(self._buffer) < _HEADER.size + length:
                break
            payload = bytes(self._buffer[_HEADER.size : _HEADER.size + length])
            del self._buffer[: _HEADER.size + length]
            if kind == 0x00:
                out.append(BridgeHangup("AudioSocket hang-up"))
            elif kind != self.kind:
                problems.append(f"kind 0x{kind:02x} (this call's audio is 0x{self.kind:02x})")
            elif length != self.frame_bytes:
                problems.append(f"audio message of {length} bytes (20 ms is {self.frame_bytes})")
            else:
                out.append(BridgeMedia(self.from_wire(payload)))
        if problems:  # report them, but keep what was valid in the same read
            self.problems.extend(problems)
        return out
