"""Frame markers that survive resampling: a sync tone every so often, and sample counting between.

Byte stamps (:mod:`bench.stamp`) only survive a bridge that forwards μ-law untouched. A bridge
that resamples (callbridge with ``audio_format = "pcm16/24000"``, or Pipecat, which always asks
the engine for 24 kHz PCM) turns them into noise. A marker has to be something a low-pass filter
keeps: here, a **sync frame** — silence for the frame's first :data:`TONE_OFFSET_MS` ms (where a
stamp may sit), then a 1 kHz cosine at −8.7 dBFS to the frame's end — and digital silence
between sync frames. Every other frame is timed by counting samples from the sync frame before
it (see :mod:`bench.align`):

* the sender knows when it sent frame *k* (it records every frame anyway);
* the receiver records, per connection, each chunk it receives as (cumulative samples, time) and
  the stream position of every **onset**: a sample louder than :data:`THRESHOLD` after at least
  :data:`QUIET_MS` of quieter ones (the tone's first sample is its peak, so the onset is sharp
  after any linear-phase filter; ringing stays under a quarter of the peak);
* frame *k*'s first sample sits ``(k − k_sync) × frame`` samples after the sync frame's, so its
  arrival is the receive time of the chunk holding that position.

A resampler that turns each 20 ms frame into exactly one 20 ms frame with a fixed delay *d* < 16 ms
(callbridge's is 4 ms) puts frame *k*'s first sample into output frame *k*: the marker then says
"frame *k* in = frame *k* out", as the stamps would. A resampler that holds samples back (soxr)
makes the chunk holding that sample arrive later: that wait is latency the caller would feel, and
it is counted. With no resampling at all the two methods must agree exactly; the harness checks
it on every passthrough run.

Pure and clock-free: signals are built once, the detector is fed arrays.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "AMPLITUDE",
    "QUIET_MS",
    "SYNC_EVERY",
    "THRESHOLD",
    "TONE_HZ",
    "TONE_OFFSET_MS",
    "OnsetDetector",
    "pcm_frame",
    "ulaw_decode",
    "ulaw_frame",
]

TONE_HZ = 1000
AMPLITUDE = 12000
"""Peak of the sync tone (−8.7 dBFS): loud enough to stand far above ringing, far from clipping."""
THRESHOLD = AMPLITUDE // 4
QUIET_MS = 60
"""An onset needs this long below :data:`THRESHOLD` before it (a sync frame's own tone is 18 ms)."""
TONE_OFFSET_MS = 2
SYNC_EVERY = 50
"""Up, frame *k* of a call is a sync frame when ``k % SYNC_EVERY == 0`` and ``k > 0`` (once a
second, from the second second on: frames lost while a call sets up come first)."""
"""The tone starts 2 ms into its frame: the first 16 μ-law bytes stay free for a byte stamp."""
FRAME_MS = 20


def _ulaw_table() -> npt.NDArray[np.int16]:
    """G.711 μ-law byte → linear PCM16 (the standard expansion, 0xFF and 0x7F → 0)."""
    out = np.empty(256, dtype=np.int16)
    for byte in range(256):
        u = ~byte & 0xFF
        magnitude = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)
        out[byte] = (0x84 - magnitude) if u & 0x80 else (magnitude - 0x84)
    return out


ULAW_TABLE = _ulaw_table()


def ulaw_decode(data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """μ-law bytes → PCM16 samples."""
    return ULAW_TABLE[np.frombuffer(data, dtype=np.uint8)]


def _ulaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """PCM16 → μ-law by nearest table entry (only used to build the constant sync frame)."""
    order = np.argsort(ULAW_TABLE, kind="stable")
    table = ULAW_TABLE[order].astype(np.int32)
    x = samples.astype(np.int32)
    i = np.clip(np.searchsorted(table, x), 1, 255)
    nearer_left = (x - table[i - 1]) <= (table[i] - x)
    codes = order[np.where(nearer_left, i - 1, i)].astype(np.uint8)
    codes[x == 0] = 0xFF  # both 0x7F and 0xFF decode to 0: silence is written 0xFF
    return bytes(codes.tobytes())


def tone_samples(rate: int) -> npt.NDArray[np.int16]:
    """One 20 ms sync frame at ``rate``: silence, then the cosine from :data:`TONE_OFFSET_MS`."""
    n = rate * FRAME_MS // 1000
    start = rate * TONE_OFFSET_MS // 1000
    t = np.arange(n - start) / rate
    out = np.zeros(n, dtype=np.int16)
    out[start:] = np.rint(AMPLITUDE * np.cos(2 * math.pi * TONE_HZ * t)).astype(np.int16)
    return out


def ulaw_frame() -> bytes:
    """The 160-byte μ-law sync frame (8 kHz)."""
    return _ulaw_encode(tone_samples(8000))


def pcm_frame(rate: int = 24000) -> bytes:
    """The sync frame as PCM16 little-endian (960 bytes at 24 kHz)."""
    return tone_samples(rate).astype("<i2").tobytes()


class OnsetDetector:
    """Finds sync onsets in one stream fed chunk by chunk; positions count from the first sample.

    ``feed`` returns the stream positions of the onsets inside the chunk. ``quiet`` is the number
    of samples (at the stream's rate) an onset needs below the threshold before it.
    """

    __slots__ = ("_last_loud", "position", "quiet", "threshold")

    def __init__(self, rate: int, threshold: int = THRESHOLD, quiet_ms: int = QUIET_MS) -> None:
        self.quiet = rate * quiet_ms // 1000
        self.threshold = threshold
        self.position = 0
        self._last_loud = -(1 << 40)

    def feed(self, samples: npt.NDArray[np.int16]) -> list[int]:
        start = self.position
        self.position += len(samples)
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > self.threshold)
        if loud.size == 0:
            return []
        where = loud + start
        gaps = np.diff(where, prepend=self._last_loud)
        self._last_loud = int(where[-1])
        return [int(p) for p in where[gaps > self.quiet]]
