"""Transcoder: pass-through identity, G.711 cross-coding, decode+resample paths, lengths."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bridge.audio.g711 import (
    alaw_to_pcm16,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)
from bridge.audio.resample import StreamResampler
from bridge.audio.transcode import FORMATS, Transcoder, parse_format

BYTES_PER_20MS = {
    "pcmu": 160,
    "pcma": 160,
    "pcm16/8000": 320,
    "pcm16/16000": 640,
    "pcm16/24000": 960,
}


def tone_pcm(rate: int, seconds: float, freq: float = 1000.0, amp: float = 12000.0) -> bytes:
    t = np.arange(round(rate * seconds)) / rate
    return np.rint(amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_formats_parse() -> None:
    assert parse_format("pcmu") == ("pcmu", 8000)
    assert parse_format("pcma") == ("pcma", 8000)
    assert parse_format("pcm16/24000") == ("pcm16", 24000)
    for bad in ("ulaw", "pcm16", "pcm16/44100", "PCMU", ""):
        with pytest.raises(ValueError, match="unknown audio format"):
            parse_format(bad)
    with pytest.raises(ValueError, match="unknown audio format"):
        Transcoder("pcmu", "opus")


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_format_is_zero_copy_identity(fmt: str) -> None:
    tc = Transcoder(fmt, fmt)
    chunk = bytes(BYTES_PER_20MS[fmt])
    assert tc.identity
    assert tc.convert(chunk) is chunk
    assert tc.delay_ms == 0.0
    assert tc.flush() == b""


@pytest.mark.parametrize(("src", "dst"), list(itertools.permutations(FORMATS, 2)))
def test_every_pair_maps_20ms_to_20ms(src: str, dst: str) -> None:
    tc = Transcoder(src, dst)
    assert not tc.identity
    same_rate = parse_format(src)[1] == parse_format(dst)[1]
    assert tc.delay_ms == (0.0 if same_rate else 4.0)
    for _ in range(5):
        assert len(tc.convert(bytes(BYTES_PER_20MS[src]))) == BYTES_PER_20MS[dst]
    assert len(tc.flush()) == (0 if same_rate else BYTES_PER_20MS[dst] // 5)  # 4 ms


def test_ulaw_alaw_cross_coding_goes_through_pcm() -> None:
    codes = bytes(range(256))
    assert Transcoder("pcmu", "pcma").convert(codes) == pcm16_to_alaw(ulaw_to_pcm16(codes))
    assert Transcoder("pcma", "pcmu").convert(codes) == pcm16_to_ulaw(alaw_to_pcm16(codes))


def test_same_rate_paths_are_the_codec() -> None:
    codes = bytes(range(256))
    pcm = tone_pcm(8000, 0.02)
    assert Transcoder("pcmu", "pcm16/8000").convert(codes) == ulaw_to_pcm16(codes)
    assert Transcoder("pcma", "pcm16/8000").convert(codes) == alaw_to_pcm16(codes)
    assert Transcoder("pcm16/8000", "pcmu").convert(pcm) == pcm16_to_ulaw(pcm)
    assert Transcoder("pcm16/8000", "pcma").convert(pcm) == pcm16_to_alaw(pcm)


def test_ulaw_to_24k_is_decode_then_stream_resample() -> None:
    ulaw = pcm16_to_ulaw(tone_pcm(8000, 0.2))
    tc, rs = Transcoder("pcmu", "pcm16/24000"), StreamResampler(8000, 24000)
    for chunk in chunks(ulaw, 160):
        assert tc.convert(chunk) == rs.process(ulaw_to_pcm16(chunk))
    assert tc.flush() == rs.flush()


def test_24k_to_ulaw_is_stream_resample_then_encode() -> None:
    pcm = tone_pcm(24000, 0.2)
    tc, rs = Transcoder("pcm16/24000", "pcmu"), StreamResampler(24000, 8000)
    for chunk in chunks(pcm, 960):
        assert tc.convert(chunk) == pcm16_to_ulaw(rs.process(chunk))
    assert tc.flush() == pcm16_to_ulaw(rs.flush())


@pytest.mark.parametrize(("codec", "silence"), [("pcmu", b"\xff"), ("pcma", b"\xd5")])
@pytest.mark.parametrize("engine", ["pcm16/16000", "pcm16/24000"])
def test_silence_survives_a_round_trip(codec: str, silence: bytes, engine: str) -> None:
    up, down = Transcoder(codec, engine), Transcoder(engine, codec)
    out = [down.convert(up.convert(silence * 160)) for _ in range(10)]
    # A-law "silence" is +8 DC: the filters' pre-ringing on the step from their silent history
    # may give a few ±8 codes in the first frame; after that the output is exact silence.
    assert out[1:] == [silence * 160] * 9
    first = np.frombuffer(Transcoder(codec, "pcm16/8000").convert(out[0]), "<i2")
    assert np.abs(first).max() <= 8


def test_ulaw_round_trip_through_24k_is_the_input_delayed_8ms() -> None:
    ulaw = pcm16_to_ulaw(tone_pcm(8000, 1.0, freq=440.0))
    up, down = Transcoder("pcmu", "pcm16/24000"), Transcoder("pcm16/24000", "pcmu")
    out = b"".join(down.convert(up.convert(c)) for c in chunks(ulaw, 160))
    assert len(out) == len(ulaw)
    delay = round((up.delay_ms + down.delay_ms) * 8)  # samples at 8 kHz
    assert delay == 64
    x = np.frombuffer(ulaw_to_pcm16(ulaw), "<i2").astype(np.float64)
    y = np.frombuffer(ulaw_to_pcm16(out), "<i2").astype(np.float64)
    lag = int(np.argmax(np.correlate(y, x, "full"))) - (len(x) - 1)
    assert lag == delay
    error = y[delay:] - x[: len(x) - delay]
    assert 10 * np.log10(np.mean(x**2) / np.mean(error**2)) > 30.0  # μ-law twice: ≈ 35 dB


def test_16k_to_24k_keeps_a_tone() -> None:
    pcm = tone_pcm(16000, 1.0, freq=5000.0)
    tc = Transcoder("pcm16/16000", "pcm16/24000")
    y = np.frombuffer(b"".join(tc.convert(c) for c in chunks(pcm, 640)), "<i2")
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert np.argmax(spectrum) * 24000 / len(y) == pytest.approx(5000.0, abs=1.0)


def test_reset_forgets_the_filter() -> None:
    tc = Transcoder("pcmu", "pcm16/16000")
    first = tc.convert(b"\x10" * 160)
    tc.convert(b"\x90" * 160)
    tc.reset()
    assert tc.convert(b"\x10" * 160) == first
    Transcoder("pcmu", "pcm16/8000").reset()  # nothing to forget; must not fail
