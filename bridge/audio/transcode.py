"""One object per call leg and direction that turns carrier audio into engine audio (or back).

A format is one of ``"pcmu"`` (G.711 μ-law, 8 kHz), ``"pcma"`` (G.711 A-law, 8 kHz) or
``"pcm16/<rate>"`` with rate 8000, 16000 or 24000 (signed little-endian mono). The pipeline is
fixed at construction: decode G.711 → resample (:class:`~bridge.audio.resample.StreamResampler`)
→ encode G.711, each step present only when needed:

================================  ==================================  ==========  ===========
src → dst                          steps                               delay       µs / 20 ms
================================  ==================================  ==========  ===========
same format                        none: the input object is returned  0           ≈ 0.05
pcmu ⇄ pcma                        one 256-byte table (via PCM16)      0           ≈ 0.4
pcmu/pcma ⇄ pcm16/8000             G.711 codec                         0           ≈ 0.4–1.2
pcmu/pcma ⇄ pcm16/16000 or 24000   G.711 codec + resampler             4 ms        ≈ 15–19
pcm16 ⇄ pcm16 at another rate      resampler                           4 ms        ≈ 14–30
================================  ==================================  ==========  ===========

Every 20 ms chunk in gives exactly one 20 ms chunk out; the delay sits inside the resampler's
filter (see :mod:`bridge.audio.resample`). Pure and synchronous: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.audio import g711
from bridge.audio.resample import StreamResampler

__all__ = ["FORMATS", "Transcoder", "bytes_per_ms", "parse_format", "silence_byte"]

FORMATS = ("pcmu", "pcma", "pcm16/8000", "pcm16/16000", "pcm16/24000")
"""Every format string a :class:`Transcoder` accepts."""

_DECODE: dict[str, Callable[[bytes], bytes]] = {
    "pcmu": g711.ulaw_to_pcm16,
    "pcma": g711.alaw_to_pcm16,
}
_ENCODE: dict[str, Callable[[bytes], bytes]] = {
    "pcmu": g711.pcm16_to_ulaw,
    "pcma": g711.pcm16_to_alaw,
}
_CROSS: dict[tuple[str, str], Callable[[bytes], bytes]] = {
    ("pcmu", "pcma"): g711.ulaw_to_alaw,
    ("pcma", "pcmu"): g711.alaw_to_ulaw,
}


def parse_format(fmt: str) -> tuple[str, int]:
    """Split a format string into (encoding, sample rate): ``"pcmu"`` → ``("pcmu", 8000)``.

    Raises :class:`ValueError` for anything not in :data:`FORMATS`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown audio format {fmt!r} (known: {', '.join(FORMATS)})")
    encoding, _, rate = fmt.partition("/")
    return encoding, int(rate) if rate else 8000


def bytes_per_ms(fmt: str) -> int:
    """Bytes of audio per millisecond in format ``fmt`` (8 for G.711, 32 for pcm16/16000)."""
    encoding, rate = parse_format(fmt)
    return rate // 1000 * (1 if encoding in ("pcmu", "pcma") else 2)


def silence_byte(fmt: str) -> int:
    """The byte that is silence in format ``fmt`` (16-bit PCM: zero bytes)."""
    return {"pcmu": 0xFF, "pcma": 0xD5}.get(fmt, 0x00)


class Transcoder:
    """Convert a stream of ``src``-format chunks to ``dst`` format.

    :meth:`convert` is called once per chunk and keeps the resampler's state between calls;
    :meth:`flush` returns the audio still inside the filter at the end of the stream (empty
    without a resampler). ``identity`` is true when ``src == dst``; ``convert`` then returns its
    argument itself. ``delay_ms`` is the algorithmic delay (0.0 or 4.0).
    """

    __slots__ = ("_decode", "_encode", "_resampler", "delay_ms", "dst", "identity", "src")

    def __init__(self, src: str, dst: str) -> None:
        src_enc, src_rate = parse_format(src)
        dst_enc, dst_rate = parse_format(dst)
        self.src, self.dst = src, dst
        self.identity = src == dst
        self._resampler = StreamResampler(src_rate, dst_rate) if src_rate != dst_rate else None
        self.delay_ms = self._resampler.delay_ms if self._resampler else 0.0
        cross = _CROSS.get((src_enc, dst_enc))
        # A-law ⇄ μ-law is a single table lookup; otherwise decode and/or encode around PCM16.
        self._decode = cross or _DECODE.get(src_enc)
        self._encode = None if cross else _ENCODE.get(dst_enc)

    def convert(self, chunk: bytes) -> bytes:
        """Transcode the next chunk of the stream (any length; whole samples expected)."""
        if self.identity:
            return chunk
        if self._decode is not None:
            chunk = self._decode(chunk)
        if self._resampler is not None:
            chunk = self._resampler.process(chunk)
        if self._encode is not None:
            chunk = self._encode(chunk)
        return chunk

    def flush(self) -> bytes:
        """End the stream: return the last ``delay_ms`` of output and reset for reuse."""
        if self._resampler is None:
            return b""
        tail = self._resampler.flush()
        return self._encode(tail) if self._encode is not None else tail

    def reset(self) -> None:
        """Drop the resampler's history (e.g. after a barge-in clears queued audio)."""
        if self._resampler is not None:
            self._resampler.reset()
