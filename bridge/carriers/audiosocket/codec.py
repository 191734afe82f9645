"""Asterisk AudioSocket (raw TCP), sans-I/O: a stream framer and a message codec.

Every message is ``kind`` (1 byte) + ``length`` (2 bytes, big-endian) + ``length`` bytes of
payload. :class:`AudioSocketReader` cuts the TCP byte stream into whole messages (any split,
any coalescing); :class:`AudioSocketCodec` turns one whole message into a session event.

Kinds: ``0x00`` hang-up, ``0x01`` the call's UUID (16 raw bytes, always first), ``0x03`` DTMF
(one ASCII digit), ``0x10`` signed-linear 16-bit little-endian audio at 8 kHz, ``0x11``–``0x18``
the same at 12/16/24/32/44.1/48/96/192 kHz (channel driver), ``0xff`` error (bit flags: 0x01
the caller hung up, 0x02 frame forwarding error, 0x04 memory error).

AudioSocket has no marks and no buffer control: Asterisk plays whatever arrives. The codec is
therefore ``playback = "paced"``: the runtime sends one 20 ms message every 20 ms on an absolute
schedule and counts what it has sent as heard (see :mod:`bridge.runtime.link`).

The dialplan application ``AudioSocket(uuid,host:port)`` always speaks 8 kHz; a listener can be
configured for 16 or 24 kHz (``Dial(AudioSocket/host:port/uuid/c(slin16))``). Audio of another
rate than the listener's is refused with an error that says which setting to change.
"""

from __future__ import annotations

import struct
import uuid

from bridge.carriers.base import CarrierCodec, audio_format
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

__all__ = [
    "AUDIO_KINDS", "KIND_AUDIO", "KIND_DTMF", "KIND_ERROR", "KIND_HANGUP", "KIND_UUID",
    "AudioSocketCodec", "AudioSocketReader", "message",
]  # fmt: skip

KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR = 0x00, 0x01, 0x03, 0x10, 0xFF
AUDIO_KINDS = {
    0x10: 8000, 0x11: 12000, 0x12: 16000, 0x13: 24000, 0x14: 32000,
    0x15: 44100, 0x16: 48000, 0x17: 96000, 0x18: 192000,
}  # fmt: skip
RATE_KINDS = {rate: kind for kind, rate in AUDIO_KINDS.items()}
ERROR_FLAGS = {0x01: "the caller hung up", 0x02: "frame forwarding error", 0x04: "memory error"}
HEADER = struct.Struct("!BH")
MAX_BUFFERED = 4 * (HEADER.size + 0xFFFF)
"""A reader holding more than this many bytes without a whole message is being fed garbage."""


def message(kind: int, payload: bytes = b"") -> bytes:
    """One AudioSocket message."""
    return HEADER.pack(kind, len(payload)) + payload


class AudioSocketReader:
    """Cuts a TCP byte stream into whole messages (``kind`` + length + payload)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of a message not yet complete (non-zero at EOF = truncated input)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Take the next bytes of the stream; return every message now complete, in order."""
        self._buffer += data
        messages: list[bytes] = []
        offset = 0
        while len(self._buffer) - offset >= HEADER.size:
            _, length = HEADER.unpack_from(self._buffer, offset)
            end = offset + HEADER.size + length
            if end > len(self._buffer):
                break
            messages.append(bytes(self._buffer[offset:end]))
            offset = end
        del self._buffer[:offset]
        if len(self._buffer) > MAX_BUFFERED:  # cannot happen with a valid header; be safe
            self._buffer.clear()
            raise CarrierProtocolError("AudioSocket stream is not framed")
        return messages


class AudioSocketCodec(CarrierCodec):
    """One AudioSocket connection; ``sample_rate`` is the listener's configured rate."""

    carrier = "audiosocket"
    playback = "paced"

    def __init__(self, sample_rate: int = 8000, parameters: dict[str, str] | None = None) -> None:
        self.format = audio_format("pcm16", sample_rate)  # raises for an unusable rate
        self.sample_rate = sample_rate
        self.kind = RATE_KINDS[sample_rate]
        self.parameters = dict(parameters or {})
        self.call_uuid: str | None = None

    def parse(self, data: str | bytes) -> ev.CarrierEvent | None:
        if isinstance(data, str):
            raise CarrierProtocolError("AudioSocket is binary; got text")
        if len(data) < HEADER.size:
            raise CarrierProtocolError(f"AudioSocket message of {len(data)} bytes (header is 3)")
        kind, length = HEADER.unpack_from(data)
        payload = data[HEADER.size :]
        if len(payload) != length:
            raise CarrierProtocolError(
                f"AudioSocket kind 0x{kind:02x} says {length} bytes, carries {len(payload)}"
            )
        if kind == KIND_UUID:
            return self._start(payload)
        if kind == KIND_HANGUP:
            return ev.CallerHangup("Asterisk hung up")
        if kind == KIND_ERROR:
            return self._error(payload)
        if self.call_uuid is None:
            raise CarrierProtocolError(f"AudioSocket kind 0x{kind:02x} before the UUID")
        if kind == KIND_DTMF:
            digit = payload.decode("ascii", "replace")
            if len(digit) != 1 or digit not in "0123456789*#ABCD":
                raise CarrierProtocolError(f"AudioSocket DTMF {payload!r} is not a keypad key")
            return ev.CallerDtmf(digit)
        rate = AUDIO_KINDS.get(kind)
        if rate is None:
            raise CarrierProtocolError(f"unknown AudioSocket kind 0x{kind:02x}")
        if rate != self.sample_rate:
            raise CarrierProtocolError(
                f"AudioSocket audio at {rate} Hz but this listener speaks {self.sample_rate} Hz "
                f"(set CALLBRIDGE_AUDIOSOCKET_RATE={rate} if that rate is supported)"
            )
        if length % 2:
            raise CarrierProtocolError(f"AudioSocket audio of {length} bytes (odd: not 16-bit)")
        return ev.CallerAudio(payload) if payload else None

    def _start(self, payload: bytes) -> ev.CallStarted:
        if self.call_uuid is not None:
            raise CarrierProtocolError("a second AudioSocket UUID on the same connection")
        if len(payload) != 16:
            raise CarrierProtocolError(f"AudioSocket UUID of {len(payload)} bytes (must be 16)")
        self.call_uuid = str(uuid.UUID(bytes=payload))
        return ev.CallStarted(
            call_sid=self.call_uuid,
            stream_sid=self.call_uuid,
            custom_parameters=self.parameters,
            encoding=self.format,
            sample_rate=self.sample_rate,
        )

    def _error(self, payload: bytes) -> ev.CallerHangup:
        code = payload[0] if payload else 0
        problems = [text for flag, text in ERROR_FLAGS.items() if code & flag]
        if code & 0x01:
            return ev.CallerHangup("Asterisk: the caller hung up")
        detail = ", ".join(problems) or f"code 0x{code:02x}"
        raise CarrierProtocolError(f"Asterisk AudioSocket error: {detail}")

    def media(self, payload: bytes) -> bytes:
        return HEADER.pack(self.kind, len(payload)) + payload

    def hangup(self) -> bytes:
        return message(KIND_HANGUP)
