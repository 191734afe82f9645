"""G.711 μ-law and A-law ⇄ 16-bit linear PCM.

PCM16 here is always signed, little-endian, mono (one sample = 2 bytes); μ-law and A-law are one
byte per sample. The work is done by the C ``audioop`` module (stdlib on Python 3.11/3.12,
provided by the ``audioop-lts`` package on ≥ 3.13): per 20 ms frame at 8 kHz it costs ≈ 0.2 µs
to decode and ≈ 1 µs to encode, an order of magnitude below numpy lookup tables. The functions
add no delay and keep no state, so any chunking gives the same bytes.

Byte facts (checked by golden vectors in ``tests/audio/test_g711.py``):

* μ-law: 0 encodes to ``0xFF``; both ``0xFF`` and ``0x7F`` ("negative zero") decode to 0.
  A μ-law silence frame is ``bytes([ULAW_SILENCE_BYTE]) * 160``.
* A-law: 0 encodes to ``0xD5``, which decodes to +8; ``0x55`` decodes to −8.

Every function raises :class:`ValueError` for PCM16 input of odd length (half a sample).
"""

from __future__ import annotations

import sys
import warnings

with warnings.catch_warnings():
    # audioop is deprecated on 3.11/3.12 and replaced by audioop-lts on 3.13+; pytest runs with
    # warnings as errors, so the import must not warn.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = [
    "ALAW_SILENCE_BYTE",
    "ULAW_SILENCE_BYTE",
    "alaw_to_pcm16",
    "alaw_to_ulaw",
    "pcm16_to_alaw",
    "pcm16_to_ulaw",
    "ulaw_to_alaw",
    "ulaw_to_pcm16",
]

ULAW_SILENCE_BYTE = 0xFF
"""μ-law code of a zero sample; repeat it 160 times for 20 ms of silence at 8 kHz."""

ALAW_SILENCE_BYTE = 0xD5
"""A-law code closest to zero (decodes to +8)."""

# audioop works in native byte order; PCM16 on the wire is little-endian.
_BIG_ENDIAN = sys.byteorder == "big"


def _check_pcm16(data: bytes) -> None:
    if len(data) & 1:
        raise ValueError(f"PCM16 data must be a whole number of samples, got {len(data)} bytes")


def ulaw_to_pcm16(data: bytes) -> bytes:
    """Decode μ-law bytes to PCM16 (2 bytes out per byte in). No delay, ≈ 0.2 µs per 20 ms."""
    pcm = audioop.ulaw2lin(data, 2)
    return audioop.byteswap(pcm, 2) if _BIG_ENDIAN else pcm


def pcm16_to_ulaw(data: bytes) -> bytes:
    """Encode PCM16 to μ-law (1 byte out per sample). No delay, ≈ 1 µs per 20 ms."""
    _check_pcm16(data)
    return audioop.lin2ulaw(audioop.byteswap(data, 2) if _BIG_ENDIAN else data, 2)


def alaw_to_pcm16(data: bytes) -> bytes:
    """Decode A-law bytes to PCM16 (2 bytes out per byte in). No delay."""
    pcm = audioop.alaw2lin(data, 2)
    return audioop.byteswap(pcm, 2) if _BIG_ENDIAN else pcm


def pcm16_to_alaw(data: bytes) -> bytes:
    """Encode PCM16 to A-law (1 byte out per sample). No delay."""
    _check_pcm16(data)
    return audioop.lin2alaw(audioop.byteswap(data, 2) if _BIG_ENDIAN else data, 2)


# μ-law ⇄ A-law through PCM16, precomputed once for all 256 codes: exactly what decoding and
# re-encoding would give, at the cost of one ``bytes.translate`` (≈ 0.1 µs per 20 ms).
_CODES = bytes(range(256))
_ULAW_TO_ALAW = audioop.lin2alaw(audioop.ulaw2lin(_CODES, 2), 2)
_ALAW_TO_ULAW = audioop.lin2ulaw(audioop.alaw2lin(_CODES, 2), 2)


def ulaw_to_alaw(data: bytes) -> bytes:
    """Transcode μ-law to A-law, byte for byte as decoding to PCM16 and re-encoding would."""
    return data.translate(_ULAW_TO_ALAW)


def alaw_to_ulaw(data: bytes) -> bytes:
    """Transcode A-law to μ-law, byte for byte as decoding to PCM16 and re-encoding would."""
    return data.translate(_ALAW_TO_ULAW)
