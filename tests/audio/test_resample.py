"""StreamResampler and resample(): frequency, alias/image rejection, delay, lengths, chunking.

Levels are measured with a Hann-windowed FFT over one second of steady-state output, so a
rejected tone shows up as its own spectral line even when it is far below one LSB. Stop-band
tones carry a little white dither (σ = 2 LSB) so that int16 rounding does not simply zero them.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.audio.resample import StreamResampler, resample

STREAM_PAIRS = [
    (8000, 24000),
    (24000, 8000),
    (8000, 16000),
    (16000, 8000),
    (16000, 24000),
    (24000, 16000),
]
FULL = 0.9 * 32767


def signal(rate: int, seconds: float, tones: dict[float, float], dither: float = 0.0) -> bytes:
    t = np.arange(round(rate * seconds)) / rate
    x = sum((amp * np.sin(2 * np.pi * f * t) for f, amp in tones.items()), np.zeros(len(t)))
    if dither:
        x += np.random.default_rng(7).normal(0.0, dither, len(t))
    return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()


def noise(rate: int, seconds: float, top_hz: float, seed: int = 3) -> bytes:
    """White noise band-limited (by FFT masking) to below ``top_hz``, peak 20000."""
    n = round(rate * seconds)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum[np.fft.rfftfreq(n, 1 / rate) > top_hz] = 0
    x = np.fft.irfft(spectrum, n)
    return bytes(np.rint(x / np.abs(x).max() * 20000).astype("<i2").tobytes())


def floats(pcm: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def level_db(y: npt.NDArray[np.float64], rate: int, freq: float, ref: float = FULL) -> float:
    """Amplitude of the ``freq`` line in ``y`` (1 s long), in dB relative to ``ref``."""
    window = np.hanning(len(y))
    spectrum = np.abs(np.fft.rfft(y * window)) / (window.sum() / 2)
    k = round(freq * len(y) / rate)
    return float(20 * np.log10(spectrum[k - 2 : k + 3].max() / ref))


def stream(src: int, dst: int, pcm: bytes, chunk_ms: int = 20) -> bytes:
    rs = StreamResampler(src, dst)
    step = src * chunk_ms // 1000 * 2
    return b"".join(rs.process(pcm[i : i + step]) for i in range(0, len(pcm), step))


def steady(pcm: bytes, rate: int) -> npt.NDArray[np.float64]:
    return floats(pcm)[-rate:]  # the last second, long after the filter has filled


# --- StreamResampler ------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), STREAM_PAIRS)
def test_every_20ms_chunk_gives_exactly_20ms(src: int, dst: int) -> None:
    rs = StreamResampler(src, dst)
    chunk = signal(src, 0.02, {440.0: 8000.0})
    for _ in range(25):  # from the very first chunk: nothing is withheld
        assert len(rs.process(chunk)) == dst // 50 * 2


@pytest.mark.parametrize(("src", "dst"), STREAM_PAIRS)
def test_1khz_keeps_its_frequency_and_level(src: int, dst: int) -> None:
    y = steady(stream(src, dst, signal(src, 2.0, {1000.0: FULL})), dst)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert np.argmax(spectrum) * dst / len(y) == pytest.approx(1000.0, abs=1.0)
    assert level_db(y, dst, 1000.0) == pytest.approx(0.0, abs=0.01)


@pytest.mark.parametrize(("src", "dst"), [(8000, 24000), (24000, 8000), (16000, 8000)])
@pytest.mark.parametrize(("freq", "max_loss_db"), [(300.0, 0.01), (3000.0, 0.02), (3400.0, 0.3)])
def test_telephone_pass_band_is_flat(src: int, dst: int, freq: float, max_loss_db: float) -> None:
    y = steady(stream(src, dst, signal(src, 2.0, {freq: FULL})), dst)
    assert level_db(y, dst, freq) > -max_loss_db


@pytest.mark.parametrize(
    ("src", "freq"),
    [
        (24000, 4500.0),
        (24000, 6000.0),
        (24000, 10000.0),
        (24000, 11500.0),
        (16000, 4500.0),
        (16000, 6000.0),
        (16000, 7500.0),
    ],
)
def test_downsampling_to_8k_rejects_aliases(src: int, freq: float) -> None:
    y = steady(stream(src, 8000, signal(src, 2.0, {freq: FULL}, dither=2.0)), 8000)
    alias = abs((freq + 4000) % 8000 - 4000)  # where the tone would fold to
    assert level_db(y, 8000, alias) < -85.0  # measured: −92.6 dB worst case just above 4 kHz


def test_full_scale_stop_band_tone_comes_out_silent() -> None:
    y = steady(stream(24000, 8000, signal(24000, 2.0, {6000.0: 32767.0})), 8000)
    assert np.abs(y).max() <= 1.0


@pytest.mark.parametrize("dst", [16000, 24000])
@pytest.mark.parametrize("freq", [1000.0, 3400.0])
def test_upsampling_rejects_images(dst: int, freq: float) -> None:
    y = steady(stream(8000, dst, signal(8000, 2.0, {freq: FULL}, dither=2.0)), dst)
    images = [
        f
        for k in range(1, dst // 8000 + 1)
        for f in (k * 8000 - freq, k * 8000 + freq)
        if f < dst / 2
    ]
    assert max(level_db(y, dst, f) for f in images) < -85.0  # measured: ≤ −101 dB


@pytest.mark.parametrize(("src", "dst"), STREAM_PAIRS)
def test_impulse_peaks_after_exactly_delay_ms(src: int, dst: int) -> None:
    rs = StreamResampler(src, dst)
    assert rs.delay_ms == 4.0
    impulse = np.zeros(src // 10, dtype="<i2")
    impulse[0] = 16000
    y = floats(rs.process(impulse.tobytes()))
    assert int(np.argmax(np.abs(y))) == round(rs.delay_ms * dst / 1000)


@pytest.mark.parametrize(("src", "dst"), STREAM_PAIRS)
def test_stream_equals_zero_phase_resample_delayed_by_delay_ms(src: int, dst: int) -> None:
    """Cross-correlation against the offline resampler finds the stated delay to the sample."""
    x = noise(src, 1.0, 3000.0)
    rs = StreamResampler(src, dst)
    y = floats(rs.process(x) + rs.flush())
    ref = floats(resample(x, src, dst))
    delay = round(rs.delay_ms * dst / 1000)
    assert len(y) == len(ref) + delay  # flush() drains exactly delay_ms
    lag = int(np.argmax(np.correlate(y, ref, "full"))) - (len(ref) - 1)
    assert lag == delay
    edge = dst // 50  # skip 20 ms at each end: the onset from silence is not band-limited
    error = (y[delay:] - ref)[edge:-edge]
    snr = 10 * np.log10(np.mean(ref[edge:-edge] ** 2) / np.mean(error**2))
    assert snr > 80.0  # measured 86–96 dB: both are int16-rounded


@given(
    pair=st.sampled_from(STREAM_PAIRS),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    cuts=st.lists(st.integers(min_value=0, max_value=1600), max_size=12),
)
@settings(deadline=None, max_examples=60)
def test_any_chunking_gives_identical_output(
    pair: tuple[int, int], seed: int, cuts: list[int]
) -> None:
    src, dst = pair
    x = (
        np.random.default_rng(seed)
        .integers(-32768, 32767, 800, endpoint=True)
        .astype("<i2")
        .tobytes()
    )
    whole = StreamResampler(src, dst)
    expected = whole.process(x) + whole.flush()
    rs = StreamResampler(src, dst)
    bounds = [0, *sorted(cuts), len(x)]  # byte offsets: odd ones split a sample
    got = b"".join(rs.process(x[a:b]) for a, b in itertools.pairwise(bounds))
    assert got + rs.flush() == expected


@pytest.mark.parametrize(("src", "dst"), STREAM_PAIRS)
def test_output_length_follows_input_length(src: int, dst: int) -> None:
    rs = StreamResampler(src, dst)
    total_in = total_out = 0
    for n in (1, 7, 160, 3, 480, 0, 999, 2):
        total_in += n
        total_out += len(rs.process(b"\x01\x00" * n)) // 2
        assert total_out == -(-total_in * dst // src)  # ceil: every completed output, no more


def test_flush_resets_for_a_new_stream() -> None:
    rs = StreamResampler(8000, 24000)
    x = noise(8000, 0.1, 3000.0)
    first, tail = rs.process(x), rs.flush()
    assert len(tail) == 96 * 2  # 4 ms at 24 kHz
    assert (rs.process(x), rs.flush()) == (first, tail)
    assert rs.flush() == b""  # nothing processed since the last flush


def test_reset_forgets_history_and_odd_byte() -> None:
    rs = StreamResampler(24000, 8000)
    rs.process(noise(24000, 0.05, 3000.0) + b"\x01")
    rs.reset()
    fresh = StreamResampler(24000, 8000)
    x = noise(24000, 0.02, 3000.0, seed=9)
    assert rs.process(x) == fresh.process(x)


def test_loud_square_wave_clips_instead_of_wrapping() -> None:
    period = np.concatenate((np.full(40, 32767), np.full(40, -32768))).astype("<i2")
    y = floats(stream(8000, 24000, np.tile(period, 50).tobytes()))
    plateau = y[96 + 3 * 20 : 96 + 3 * 20 + 3 * 10]  # mid-plateau of the first positive half
    assert (plateau > 30000).all()
    assert y.max() == 32767
    assert y.min() == -32768


def test_equal_rates_pass_through() -> None:
    rs = StreamResampler(16000, 16000)
    chunk = b"\x01\x02" * 320
    assert rs.process(chunk) is chunk
    assert rs.delay_ms == 0.0
    assert rs.flush() == b""


@pytest.mark.parametrize(("src", "dst"), [(0, 8000), (8000, -1), (8000, 44100), (22050, 8000)])
def test_unsupported_rates_are_rejected(src: int, dst: int) -> None:
    with pytest.raises(ValueError, match=r"rate|ratio"):
        StreamResampler(src, dst)


# --- one-shot resample() ---------------------------------------------------------------------


def test_oneshot_22050_to_8000_keeps_1khz_and_rejects_6khz() -> None:
    kept = floats(resample(signal(22050, 1.0, {1000.0: FULL}), 22050, 8000))
    assert len(kept) == 8000
    assert level_db(kept, 8000, 1000.0) == pytest.approx(0.0, abs=0.01)
    rejected = floats(resample(signal(22050, 1.0, {6000.0: FULL}, dither=2.0), 22050, 8000))
    assert level_db(rejected, 8000, 2000.0) < -95.0


def test_oneshot_44100_to_16000_keeps_in_band_and_rejects_above_8khz() -> None:
    y = floats(
        resample(
            signal(44100, 1.0, {1000.0: FULL / 4, 7000.0: FULL / 4, 12000.0: FULL / 4}, 2.0),
            44100,
            16000,
        )
    )
    assert len(y) == 16000
    assert level_db(y, 16000, 1000.0, FULL / 4) == pytest.approx(0.0, abs=0.01)
    assert level_db(y, 16000, 7000.0, FULL / 4) == pytest.approx(0.0, abs=0.01)
    assert level_db(y, 16000, 4000.0, FULL / 4) < -95.0  # 12 kHz would fold to 4 kHz


def test_oneshot_has_no_delay() -> None:
    x = noise(8000, 1.0, 3500.0)
    back = floats(resample(resample(x, 8000, 24000), 24000, 8000))
    original = floats(x)
    assert len(back) == len(original)
    error = (back - original)[50:-50]
    assert 10 * np.log10(np.mean(original**2) / np.mean(error**2)) > 70.0


@pytest.mark.parametrize(
    ("n", "src", "dst", "expected"),
    [(441, 22050, 8000, 160), (1, 22050, 8000, 1), (10, 8000, 22050, 28), (3, 24000, 8000, 1)],
)
def test_oneshot_length_is_ceiling(n: int, src: int, dst: int, expected: int) -> None:
    assert len(resample(b"\x00\x01" * n, src, dst)) == expected * 2


def test_oneshot_trivial_cases() -> None:
    pcm = b"\x01\x02\x03\x04"
    assert resample(pcm, 8000, 8000) is pcm
    assert resample(b"", 8000, 24000) == b""
    with pytest.raises(ValueError, match="whole number of samples"):
        resample(b"\x00\x00\x00", 8000, 24000)
    with pytest.raises(ValueError, match="positive"):
        resample(pcm, 0, 8000)
