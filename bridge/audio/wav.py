"""Read and write WAV files as PCM16 mono (prompts, recordings, test fixtures).

:func:`parse_wav` / :func:`build_wav` work on bytes; :func:`read_wav` / :func:`write_wav` only add
the file read or write. The RIFF parser is our own rather than the stdlib ``wave`` module, which
refuses G.711 files. Accepted encodings:

* ``WAVE_FORMAT_PCM`` (tag 1), 16-bit signed or 8-bit unsigned;
* ``WAVE_FORMAT_MULAW`` (tag 7) and ``WAVE_FORMAT_ALAW`` (tag 6), 8-bit, decoded to PCM16;
* the same three inside ``WAVE_FORMAT_EXTENSIBLE`` (tag 0xFFFE).

Any number of channels is averaged down to mono. Everything else raises :class:`ValueError`
saying what was found. The sample rate is returned as is (no resampling here; see
:func:`bridge.audio.resample.resample`).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from bridge.audio import g711

__all__ = ["build_wav", "parse_wav", "read_wav", "write_wav"]

_PCM, _ALAW, _MULAW, _EXTENSIBLE = 1, 6, 7, 0xFFFE
# KSDATAFORMAT_SUBTYPE_* GUIDs are the format tag followed by this fixed tail.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_FMT = struct.Struct("<HHIIHH")  # tag, channels, rate, byte rate, block align, bits per sample


def parse_wav(data: bytes) -> tuple[bytes, int]:
    """Decode a whole WAV file image to ``(PCM16 mono little-endian bytes, sample rate)``."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None  # tag, channels, rate, bits
    samples: bytes | None = None
    pos = 12
    while pos + 8 <= len(data) and (fmt is None or samples is None):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]  # a streamed file may claim more than it holds
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(body)
        elif chunk_id == b"data":
            samples = body
        pos += 8 + size + (size & 1)
    if fmt is None:
        raise ValueError("WAV file has no 'fmt ' chunk")
    if samples is None:
        raise ValueError("WAV file has no 'data' chunk")
    tag, channels, rate, bits = fmt
    if (tag, bits) == (_PCM, 16):
        pcm = samples[: len(samples) & ~1]
    elif (tag, bits) == (_PCM, 8):
        u8 = np.frombuffer(samples, dtype=np.uint8)
        pcm = ((u8.astype("<i2") - 128) << 8).astype("<i2").tobytes()
    elif (tag, bits) == (_MULAW, 8):
        pcm = g711.ulaw_to_pcm16(samples)
    elif (tag, bits) == (_ALAW, 8):
        pcm = g711.alaw_to_pcm16(samples)
    else:
        raise ValueError(
            f"unsupported WAV encoding: format tag {tag:#06x} with {bits} bits per sample "
            "(supported: 8/16-bit PCM, 8-bit μ-law, 8-bit A-law)"
        )
    return _downmix(pcm, channels), rate


def _parse_fmt(body: bytes) -> tuple[int, int, int, int]:
    if len(body) < _FMT.size:
        raise ValueError(f"WAV 'fmt ' chunk too short ({len(body)} bytes)")
    tag, channels, rate, _, _, bits = _FMT.unpack_from(body)
    if tag == _EXTENSIBLE:
        if len(body) < 40 or body[26:40] != _GUID_TAIL:
            raise ValueError("unsupported WAVE_FORMAT_EXTENSIBLE sub-format")
        (tag,) = struct.unpack_from("<H", body, 24)
    if channels < 1 or rate < 1:
        raise ValueError(f"WAV header claims {channels} channels at {rate} Hz")
    return tag, channels, rate, bits


def _downmix(pcm: bytes, channels: int) -> bytes:
    if channels == 1:
        return pcm
    frames = np.frombuffer(pcm, dtype="<i2")
    frames = frames[: len(frames) - len(frames) % channels].reshape(-1, channels)
    mono = np.rint(frames.sum(axis=1, dtype=np.int32) / channels).astype("<i2")
    return bytes(mono.tobytes())


def build_wav(pcm: bytes, rate: int, channels: int = 1) -> bytes:
    """Wrap interleaved PCM16 little-endian samples in a canonical 44-byte-header WAV image."""
    if rate <= 0 or channels <= 0:
        raise ValueError(f"rate and channels must be positive, got {rate} and {channels}")
    if len(pcm) % (2 * channels):
        raise ValueError(f"{len(pcm)} bytes is not a whole number of {channels}-channel frames")
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    fmt = _FMT.pack(_PCM, channels, rate, rate * channels * 2, channels * 2, 16)
    return b"".join(
        (
            header,
            b"fmt ",
            struct.pack("<I", len(fmt)),
            fmt,
            b"data",
            struct.pack("<I", len(pcm)),
            pcm,
        )
    )


def read_wav(path: str | os.PathLike[str]) -> tuple[bytes, int]:
    """Read a WAV file: ``(PCM16 mono bytes, sample rate)``. See :func:`parse_wav`."""
    return parse_wav(Path(path).read_bytes())


def write_wav(path: str | os.PathLike[str], pcm: bytes, rate: int, channels: int = 1) -> None:
    """Write interleaved PCM16 little-endian ``pcm`` as a 16-bit PCM WAV file."""
    Path(path).write_bytes(build_wav(pcm, rate, channels))
