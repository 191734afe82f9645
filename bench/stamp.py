"""Frame stamps: a timestamp carried inside the audio bytes of one 20 ms μ-law frame.

A stamp lets one frame be timed across processes: the sender writes *who*, *which* and *when*
into the first :data:`STAMP_BYTES` bytes of the 160-byte frame, the receiver reads them back and
subtracts. Times are microseconds of ``CLOCK_MONOTONIC`` (Python's :func:`time.monotonic_ns`),
which on Linux is one clock for every process of the machine.

Layout (big-endian, 16 bytes, the remaining 144 bytes are μ-law silence ``0xFF``)::

    0  3  magic  b"\\xcb\\x5a\\x17"   not a pattern real μ-law speech or silence produces
    3  1  kind   1 = caller → engine (up), 2 = engine → caller (down)
    4  2  call   up: the load generator's call index; down: the fake engine's connection id
    6  4  seq    frame number within (kind, call), from 0
    10 6  t_us   48-bit microsecond timestamp (wraps after 8.9 years of uptime)

The bridge in passthrough mode (``audio/pcmu`` on both legs) forwards these bytes unchanged. Pure
and clock-free: callers pass the time in.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = [
    "DOWN",
    "FRAME_BYTES",
    "MAGIC",
    "STAMP_BYTES",
    "UP",
    "Stamp",
    "Stamper",
    "read_stamp",
    "read_stamps",
    "stamp_frame",
]

FRAME_BYTES = 160
"""20 ms of μ-law at 8 kHz."""
STAMP_BYTES = 16
MAGIC = b"\xcb\x5a\x17"
UP = 1
DOWN = 2
SILENCE = 0xFF

_LAYOUT = struct.Struct(">3sBHIHI")  # magic, kind, call, seq, t_us >> 32, t_us & 0xffffffff
_MASK48 = (1 << 48) - 1


class Stamp(NamedTuple):
    kind: int
    call: int
    seq: int
    t_us: int


def stamp_frame(kind: int, call: int, seq: int, t_us: int) -> bytes:
    """One 160-byte frame carrying the stamp, padded with μ-law silence."""
    frame = bytearray(b"\xff" * FRAME_BYTES)
    t = t_us & _MASK48
    _LAYOUT.pack_into(
        frame, 0, MAGIC, kind, call & 0xFFFF, seq & 0xFFFFFFFF, t >> 32, t & 0xFFFFFFFF
    )
    return bytes(frame)


def read_stamp(frame: bytes | bytearray | memoryview, offset: int = 0) -> Stamp | None:
    """The stamp at ``offset``, or None if those bytes carry no stamp."""
    if len(frame) - offset < STAMP_BYTES:
        return None
    magic, kind, call, seq, hi, lo = _LAYOUT.unpack_from(frame, offset)
    if magic != MAGIC:
        return None
    return Stamp(kind, call, seq, (hi << 32) | lo)


def read_stamps(audio: bytes | bytearray | memoryview) -> list[Stamp | None]:
    """The stamp of every whole 160-byte frame in ``audio`` (None for an unstamped one)."""
    return [read_stamp(audio, i) for i in range(0, len(audio) - FRAME_BYTES + 1, FRAME_BYTES)]


class Stamper:
    """Writes stamps into a reusable buffer of ``frames`` frames: the cheap path for hot loops.

    ``fill(first_seq, t_us)`` stamps frame ``j`` with ``first_seq + j`` and returns the bytes of
    all frames (one allocation). The payload outside the stamps stays silence.
    """

    __slots__ = ("_buf", "call", "frames", "kind")

    def __init__(self, kind: int, call: int, frames: int = 1) -> None:
        if frames < 1:
            raise ValueError("frames must be at least 1")
        self.kind = kind
        self.call = call & 0xFFFF
        self.frames = frames
        self._buf = bytearray(b"\xff" * (FRAME_BYTES * frames))

    def fill(self, first_seq: int, t_us: int, frames: int | None = None) -> bytes:
        count = self.frames if frames is None else frames
        if not 1 <= count <= self.frames:
            raise ValueError(f"can stamp 1..{self.frames} frames, not {count}")
        t = t_us & _MASK48
        hi, lo = t >> 32, t & 0xFFFFFFFF
        buf, kind, call, pack = self._buf, self.kind, self.call, _LAYOUT.pack_into
        for j in range(count):
            pack(buf, j * FRAME_BYTES, MAGIC, kind, call, (first_seq + j) & 0xFFFFFFFF, hi, lo)
        return bytes(buf[: count * FRAME_BYTES])
