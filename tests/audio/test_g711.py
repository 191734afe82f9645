"""G.711 golden vectors, an independent reference codec, and round trips over every code."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from bridge.audio import g711
from bridge.audio.g711 import (
    ALAW_SILENCE_BYTE,
    ULAW_SILENCE_BYTE,
    alaw_to_pcm16,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def samples(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


# --- golden vectors (CPython audioop, checked byte for byte) -------------------------------


def test_silence_constants() -> None:
    assert ULAW_SILENCE_BYTE == 0xFF
    assert ALAW_SILENCE_BYTE == 0xD5
    assert pcm16_to_ulaw(pcm(0) * 160) == b"\xff" * 160
    assert pcm16_to_alaw(pcm(0) * 160) == b"\xd5" * 160


def test_ulaw_zero_and_negative_zero() -> None:
    assert pcm16_to_ulaw(pcm(0)) == b"\xff"
    assert ulaw_to_pcm16(b"\xff") == pcm(0)
    assert ulaw_to_pcm16(b"\x7f") == pcm(0)


def test_alaw_zero() -> None:
    assert pcm16_to_alaw(pcm(0)) == b"\xd5"
    assert alaw_to_pcm16(b"\xd5") == pcm(8)
    assert alaw_to_pcm16(b"\x55") == pcm(-8)


ENCODE_VECTORS = [
    # sample, μ-law, A-law
    (32767, 0x80, 0xAA),
    (32124, 0x80, 0xAA),
    (-32767, 0x00, 0x2A),
    (-32768, 0x00, 0x2A),
    (8159, 0x9F, 0x8A),
    (1000, 0xCE, 0xFA),
    (-1000, 0x4E, 0x7A),
    (100, 0xF2, 0xD3),
    (-100, 0x72, 0x53),
    (32, 0xFB, 0xD7),
    (8, 0xFE, 0xD5),
    (4, 0xFE, 0xD5),
    (3, 0xFF, 0xD5),
    (1, 0xFF, 0xD5),
    (-1, 0x7E, 0x55),
    (-8, 0x7E, 0x55),
]

DECODE_VECTORS = [
    # code, μ-law sample, A-law sample
    (0x00, -32124, -5504),
    (0x80, 32124, 5504),
    (0x01, -31100, -5248),
    (0x81, 31100, 5248),
    (0x2A, -5372, -32256),
    (0xAA, 5372, 32256),
    (0x7E, -8, -880),
    (0xFE, 8, 880),
    (0x7F, 0, -848),
    (0xFF, 0, 848),
    (0xD4, 748, 24),
    (0x54, -748, -24),
    (0xD5, 716, 8),
    (0x55, -716, -8),
]


def test_encode_vectors_byte_for_byte() -> None:
    source = pcm(*(s for s, _, _ in ENCODE_VECTORS))
    assert pcm16_to_ulaw(source) == bytes(u for _, u, _ in ENCODE_VECTORS)
    assert pcm16_to_alaw(source) == bytes(a for _, _, a in ENCODE_VECTORS)


def test_decode_vectors_byte_for_byte() -> None:
    codes = bytes(c for c, _, _ in DECODE_VECTORS)
    assert ulaw_to_pcm16(codes) == pcm(*(u for _, u, _ in DECODE_VECTORS))
    assert alaw_to_pcm16(codes) == pcm(*(a for _, _, a in DECODE_VECTORS))


# --- an independent reference written from the G.711 segment tables -----------------------


def ref_lin2ulaw(sample: int) -> int:
    value, mask = sample >> 2, 0xFF  # 14-bit domain
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + 33
    seg = next(
        (
            i
            for i, end in enumerate((0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
            if value <= end
        ),
        8,
    )
    if seg == 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0xF)) ^ mask


def ref_lin2alaw(sample: int) -> int:
    value, mask = sample >> 3, 0xD5  # 13-bit domain
    if value < 0:
        value, mask = -value - 1, 0x55
    seg = next(
        (
            i
            for i, end in enumerate((0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
            if value <= end
        ),
        8,
    )
    if seg == 8:
        return 0x7F ^ mask
    shift = 1 if seg < 2 else seg
    return ((seg << 4) | ((value >> shift) & 0xF)) ^ mask


def ref_ulaw2lin(code: int) -> int:
    code = ~code & 0xFF
    t = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - t if code & 0x80 else t - 0x84


def ref_alaw2lin(code: int) -> int:
    code ^= 0x55
    seg = (code & 0x70) >> 4
    t = (code & 0x0F) << 4
    t = t + 8 if seg == 0 else (t + 0x108) << max(seg - 1, 0)
    return t if code & 0x80 else -t


def test_encoders_match_reference_for_all_65536_samples() -> None:
    every = pcm(*range(-32768, 32768))
    assert pcm16_to_ulaw(every) == bytes(ref_lin2ulaw(s) for s in range(-32768, 32768))
    assert pcm16_to_alaw(every) == bytes(ref_lin2alaw(s) for s in range(-32768, 32768))


def test_decoders_match_reference_for_all_256_codes() -> None:
    codes = bytes(range(256))
    assert samples(ulaw_to_pcm16(codes)) == [ref_ulaw2lin(c) for c in codes]
    assert samples(alaw_to_pcm16(codes)) == [ref_alaw2lin(c) for c in codes]


# --- round trips ---------------------------------------------------------------------------


def test_ulaw_every_code_round_trips_except_negative_zero() -> None:
    codes = bytes(range(256))
    expected = bytes(0xFF if c == 0x7F else c for c in codes)
    assert pcm16_to_ulaw(ulaw_to_pcm16(codes)) == expected


def test_alaw_every_code_round_trips() -> None:
    codes = bytes(range(256))
    assert pcm16_to_alaw(alaw_to_pcm16(codes)) == codes


def test_cross_transcoding_equals_going_through_pcm() -> None:
    codes = bytes(range(256))
    assert g711.ulaw_to_alaw(codes) == pcm16_to_alaw(ulaw_to_pcm16(codes))
    assert g711.alaw_to_ulaw(codes) == pcm16_to_ulaw(alaw_to_pcm16(codes))


def test_lengths_and_empty_input() -> None:
    assert len(ulaw_to_pcm16(b"\xff" * 160)) == 320
    assert len(pcm16_to_alaw(pcm(0) * 160)) == 160
    for fn in (ulaw_to_pcm16, pcm16_to_ulaw, alaw_to_pcm16, pcm16_to_alaw):
        assert fn(b"") == b""


@pytest.mark.parametrize("encode", [pcm16_to_ulaw, pcm16_to_alaw])
def test_half_a_sample_is_rejected(encode: Callable[[bytes], bytes]) -> None:
    with pytest.raises(ValueError, match="whole number of samples"):
        encode(b"\x00\x00\x00")
