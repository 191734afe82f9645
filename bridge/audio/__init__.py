"""Pure, synchronous, clock-free audio: G.711, framing, resampling, transcoding, WAV files.

Nothing here awaits, reads the clock or touches a socket; every stateful object (Framer,
StreamResampler, Transcoder) is fed bytes and returns bytes, so a recorded call replays exactly.

* :mod:`~bridge.audio.g711`: μ-law / A-law ⇄ PCM16 (C ``audioop``; no delay, ≈ 1 µs per 20 ms).
* :mod:`~bridge.audio.framing`: bytes per 20 ms, and :class:`Framer` to re-chunk into frames.
* :mod:`~bridge.audio.resample`: :class:`StreamResampler` (live, 4 ms delay, ≥ 90 dB
  anti-alias/anti-image) and :func:`resample` (offline, any pair of rates, zero phase).
* :mod:`~bridge.audio.transcode`: :class:`Transcoder` between carrier and engine formats.
* :mod:`~bridge.audio.wav`: :func:`read_wav` / :func:`write_wav` (PCM, μ-law, A-law files).

PCM16 always means signed 16-bit little-endian mono unless a ``channels`` argument says otherwise.
"""

from __future__ import annotations

from bridge.audio.framing import Framer, frame_bytes
from bridge.audio.g711 import (
    ALAW_SILENCE_BYTE,
    ULAW_SILENCE_BYTE,
    alaw_to_pcm16,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)
from bridge.audio.resample import StreamResampler, resample
from bridge.audio.transcode import FORMATS, Transcoder
from bridge.audio.wav import read_wav, write_wav

__all__ = [
    "ALAW_SILENCE_BYTE",
    "FORMATS",
    "ULAW_SILENCE_BYTE",
    "Framer",
    "StreamResampler",
    "Transcoder",
    "alaw_to_pcm16",
    "frame_bytes",
    "pcm16_to_alaw",
    "pcm16_to_ulaw",
    "read_wav",
    "resample",
    "ulaw_to_pcm16",
    "write_wav",
]
