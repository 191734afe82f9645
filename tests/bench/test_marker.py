"""Sync frames and the onset detector: exact without resampling, and through real resamplers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import marker


def stream(frames: int, syncs: set[int], rate: int) -> np.ndarray:
    """``frames`` 20 ms frames of silence at ``rate``, with a sync frame at each index in syncs."""
    n = rate // 50
    out = np.zeros(frames * n, dtype=np.int16)
    tone = marker.tone_samples(rate)
    for k in syncs:
        out[k * n : (k + 1) * n] = tone
    return out


def feed(detector: marker.OnsetDetector, samples: np.ndarray, cuts: list[int]) -> list[int]:
    found: list[int] = []
    edges = [0, *sorted(c for c in cuts if 0 < c < len(samples)), len(samples)]
    for a, b in itertools.pairwise(edges):
        found += detector.feed(samples[a:b])
    return found


def test_ulaw_table_matches_the_bridge_codec() -> None:
    g711 = pytest.importorskip("bridge.audio.g711")
    every = bytes(range(256))
    expected = np.frombuffer(g711.ulaw_to_pcm16(every), dtype="<i2")
    assert np.array_equal(marker.ulaw_decode(every), expected)


def test_sync_frames() -> None:
    ulaw = marker.ulaw_frame()
    assert len(ulaw) == 160
    assert ulaw[:16] == b"\xff" * 16  # room for a byte stamp
    pcm = marker.ulaw_decode(ulaw)
    assert abs(int(pcm[16]) - marker.AMPLITUDE) < marker.AMPLITUDE * 0.05  # the peak comes first
    assert np.abs(pcm).max() < marker.AMPLITUDE * 1.05
    wide = np.frombuffer(marker.pcm_frame(), dtype="<i2")
    assert wide.size == 480
    assert not wide[:48].any()
    assert wide[48] == marker.AMPLITUDE


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=16_000), max_size=40))
def test_onsets_do_not_depend_on_chunking(cuts: list[int]) -> None:
    samples = stream(100, {10, 30, 31, 60}, 8000)
    whole = marker.OnsetDetector(8000).feed(samples)
    assert whole == [10 * 160 + 16, 30 * 160 + 16, 60 * 160 + 16]  # 31 is within the quiet gap
    assert feed(marker.OnsetDetector(8000), samples, cuts) == whole


def test_one_sample_at_a_time() -> None:
    samples = stream(20, {5, 15}, 8000)
    detector = marker.OnsetDetector(8000)
    found = feed(detector, samples, list(range(len(samples))))
    assert found == [5 * 160 + 16, 15 * 160 + 16]
    assert detector.position == len(samples)


def test_sync_survives_the_bridge_resampler_into_the_same_frame() -> None:
    """callbridge's 8 ↔ 24 kHz transcoder: frame k in is frame k out, 4 ms late."""
    transcode = pytest.importorskip("bridge.audio.transcode")
    g711 = pytest.importorskip("bridge.audio.g711")
    up = transcode.Transcoder("pcmu", "pcm16/24000")
    ulaw = g711.pcm16_to_ulaw(stream(120, {50, 100}, 8000).astype("<i2").tobytes())
    out = b"".join(up.convert(ulaw[i : i + 160]) for i in range(0, len(ulaw), 160))
    onsets = marker.OnsetDetector(24000).feed(np.frombuffer(out, dtype="<i2"))
    delay = round(up.delay_ms * 24)
    assert len(onsets) == 2
    for k, pos in zip((50, 100), onsets, strict=True):
        assert abs(pos - (k * 480 + 48 + delay)) <= 2
        assert pos // 480 == k
    down = transcode.Transcoder("pcm16/24000", "pcmu")
    pcm = stream(60, {0, 40}, 24000).astype("<i2").tobytes()
    back = b"".join(down.convert(pcm[i : i + 960]) for i in range(0, len(pcm), 960))
    onsets = marker.OnsetDetector(8000).feed(marker.ulaw_decode(back))
    assert [p // 160 for p in onsets] == [0, 40]
    assert all(abs(p % 160 - (16 + 32)) <= 1 for p in onsets)


def test_sync_survives_soxr_streaming_as_pipecat_uses_it() -> None:
    """soxr's VHQ stream (Pipecat's resampler) drops its delay: the onset stays in place."""
    soxr = pytest.importorskip("soxr")
    rs = soxr.ResampleStream(8000, 24000, 1, dtype="int16", quality="VHQ")
    samples = stream(150, {50, 100}, 8000)
    out = np.concatenate([rs.resample_chunk(samples[i : i + 160]) for i in range(0, 24000, 160)])
    onsets = marker.OnsetDetector(24000).feed(out)
    assert [p // 480 for p in onsets] == [50, 100]
    assert all(abs(p % 480 - 48) <= 3 for p in onsets)


def test_ringing_stays_below_the_threshold() -> None:
    """A resampled sync frame rings after its end; the quiet gap is measured from the last
    loud sample, so the ringing never makes a second onset."""
    transcode = pytest.importorskip("bridge.audio.transcode")
    down = transcode.Transcoder("pcm16/24000", "pcmu")
    pcm = stream(30, {3, 10, 11, 20}, 24000).astype("<i2").tobytes()
    back = b"".join(down.convert(pcm[i : i + 960]) for i in range(0, len(pcm), 960))
    assert [p // 160 for p in marker.OnsetDetector(8000).feed(marker.ulaw_decode(back))] == [
        3,
        10,
        20,
    ]
