"""WAV reading and writing: round trips, downmix, 8-bit, hand-built μ-law/A-law/extensible files."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import pytest

from bridge.audio.g711 import alaw_to_pcm16, pcm16_to_ulaw, ulaw_to_pcm16
from bridge.audio.wav import build_wav, parse_wav, read_wav, write_wav

GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def chunk(chunk_id: bytes, body: bytes) -> bytes:
    return chunk_id + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt_chunk(tag: int, channels: int, rate: int, bits: int, extra: bytes | None = None) -> bytes:
    align = channels * max(bits // 8, 1)
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if extra is not None:
        body += struct.pack("<H", len(extra)) + extra
    return chunk(b"fmt ", body)


def test_round_trip_mono(tmp_path: Path) -> None:
    samples = pcm(0, 1, -1, 32767, -32768, 1234)
    for rate in (8000, 16000, 24000, 44100):
        path = tmp_path / f"mono{rate}.wav"
        write_wav(path, samples, rate)
        assert read_wav(path) == (samples, rate)
        assert read_wav(str(path)) == (samples, rate)


def test_written_file_is_what_the_stdlib_expects(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    write_wav(path, pcm(1, 2, 3, 4, 5, 6), 16000, channels=2)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (
            2,
            2,
            16000,
            3,
        )
        assert w.readframes(3) == pcm(1, 2, 3, 4, 5, 6)
    assert len(path.read_bytes()) == 44 + 12


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    write_wav(path, pcm(1000, 3000, -32768, -32768, 32767, 32767, 100, -100), 8000, channels=2)
    assert read_wav(path) == (pcm(2000, -32768, 32767, 0), 8000)


def test_eight_bit_unsigned_pcm(tmp_path: Path) -> None:
    path = tmp_path / "u8.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes([128, 0, 255, 129]))
    assert read_wav(path) == (pcm(0, -32768, 32512, 256), 8000)


def test_hand_built_ulaw_wav(tmp_path: Path) -> None:
    ulaw = pcm16_to_ulaw(pcm(*range(-30000, 30000, 1001))) + b"\xff\x7f\x00"  # odd length
    image = riff(
        fmt_chunk(7, 1, 8000, 8, extra=b""),  # WAVE_FORMAT_MULAW, 18-byte fmt with cbSize 0
        chunk(b"fact", struct.pack("<I", len(ulaw))),
        chunk(b"data", ulaw),  # odd size: followed by a pad byte
        chunk(b"LIST", b"INFOjunk"),
    )
    path = tmp_path / "ulaw.wav"
    path.write_bytes(image)
    with pytest.raises(wave.Error), wave.open(str(path), "rb"):  # why we parse RIFF ourselves
        pass
    assert read_wav(path) == (ulaw_to_pcm16(ulaw), 8000)


def test_hand_built_alaw_stereo_wav() -> None:
    alaw = bytes([0xD5, 0x55, 0xAA, 0xAA])  # frames (+8, −8) and (32256, 32256)
    assert parse_wav(riff(fmt_chunk(6, 2, 8000, 8), chunk(b"data", alaw))) == (pcm(0, 32256), 8000)
    assert alaw_to_pcm16(b"\xaa") == pcm(32256)


@pytest.mark.parametrize(
    ("subtype", "bits", "data", "expected"),
    [(1, 16, pcm(5, -5), pcm(5, -5)), (7, 8, b"\xff\x80", pcm(0, 32124))],
)
def test_wave_format_extensible(subtype: int, bits: int, data: bytes, expected: bytes) -> None:
    extra = struct.pack("<HI", bits, 4) + struct.pack("<H", subtype) + GUID_TAIL
    image = riff(fmt_chunk(0xFFFE, 1, 16000, bits, extra=extra), chunk(b"data", data))
    assert parse_wav(image) == (expected, 16000)


def test_data_chunk_longer_than_the_file_is_read_to_the_end() -> None:
    image = riff(fmt_chunk(1, 1, 8000, 16)) + b"data" + struct.pack("<I", 0xFFFFFFFF) + pcm(7, 8, 9)
    assert parse_wav(image) == (pcm(7, 8, 9), 8000)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (b"", "not a RIFF/WAVE"),
        (b"RIFX\x00\x00\x00\x00WAVE", "not a RIFF/WAVE"),
        (riff(chunk(b"data", pcm(1))), "no 'fmt ' chunk"),
        (riff(fmt_chunk(1, 1, 8000, 16)), "no 'data' chunk"),
        (riff(chunk(b"fmt ", b"\x01\x00"), chunk(b"data", b"")), "too short"),
        (riff(fmt_chunk(1, 1, 8000, 24), chunk(b"data", b"\x00" * 6)), "unsupported WAV encoding"),
        (riff(fmt_chunk(3, 1, 8000, 32), chunk(b"data", b"\x00" * 8)), "unsupported WAV encoding"),
        (riff(fmt_chunk(0x55, 1, 8000, 0), chunk(b"data", b"\x00")), "unsupported WAV encoding"),
        (
            riff(fmt_chunk(0xFFFE, 1, 8000, 16, extra=b"\x00" * 22), chunk(b"data", b"")),
            "sub-format",
        ),
        (riff(fmt_chunk(1, 0, 8000, 16), chunk(b"data", b"")), "0 channels"),
    ],
)
def test_bad_files_raise_value_error(image: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_wav(image)


def test_build_wav_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="whole number"):
        build_wav(b"\x00\x00\x00", 8000)
    with pytest.raises(ValueError, match="whole number"):
        build_wav(pcm(1), 8000, channels=2)
    with pytest.raises(ValueError, match="positive"):
        build_wav(b"", 0)
