"""Sample-rate conversion of PCM16 mono: a low-delay streaming resampler and a one-shot one.

:class:`StreamResampler` is for the live path (8 kHz phone audio ⇄ 16/24 kHz engine audio, also
16 ⇄ 24 kHz and other ratios of small integers). It is a rational polyphase FIR: conceptually
upsample by L, low-pass, keep every M-th sample. The low-pass is a linear-phase Kaiser-windowed
sinc spanning 8 ms, so the **algorithmic delay is 4 ms in every direction** (``delay_ms``; an
integer number of samples at both rates), and it is the same filter whether it serves as the
anti-alias filter on the way down or the anti-imaging filter on the way up:

* pass band flat to within 0.25 dB up to 3.4 kHz (for 8 kHz ⇄ anything; −6 dB at 3.625 kHz);
* stop band from 4 kHz (the 8 kHz Nyquist) on, attenuated ≥ 90 dB, so 24→8 kHz and 16→8 kHz
  alias rejection and 8→16/24 kHz image rejection are ≥ 90 dB before int16 rounding (the
  measured figures in the tests include that rounding: ≥ 85 dB);
* cost per 20 ms frame ≈ 14–18 µs for 8 kHz ⇄ 16/24 kHz and ≈ 30 µs for 16 ⇄ 24 kHz (numpy;
  see ``bench/audio_bench.py``).

Nothing is withheld to absorb the delay: the delay lives inside the filter (its history starts
as silence), so every call returns exactly the output that its input completes — 20 ms of 8 kHz
input gives exactly 20 ms at 24 kHz from the very first frame, and vice versa. The filter
coefficients are integers scaled by 2**-24 and samples are integers, so every float64 product
and sum is exact: the output is bit-identical for any chunking of the same input.

:func:`resample` is the offline converter for any pair of rates (22050 → 8000 for synthesized
speech, 44100 → 16000 for WAV files): zero-phase (no delay), 16 ms windowed-sinc, ≥ 100 dB stop
band from the lower Nyquist, pass band to 90 % of it. It needs the whole signal at once.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["StreamResampler", "resample"]

Floats = npt.NDArray[np.float64]

_STREAM_DELAY_S = 0.004  # half the span of the streaming filter
_STREAM_TRANSITION_HZ = 375.0  # cutoff (−6 dB point) sits this far below the lower Nyquist
_STREAM_BETA = 9.0  # Kaiser β: ≥ 90 dB stop band with the 8 ms span
_SCALE = float(2**24)  # coefficient quantum: products stay below 2**53, so sums are exact
_MAX_FACTOR = 12  # largest L or M (after reducing the ratio) the streaming path accepts

_OFFLINE_ATTENUATION_DB = 100.0
_OFFLINE_PASS = 0.90  # pass band edge as a fraction of the lower Nyquist; stop band from 1.0


def _ratio(src_rate: int, dst_rate: int) -> tuple[int, int]:
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} and {dst_rate}")
    g = math.gcd(src_rate, dst_rate)
    return dst_rate // g, src_rate // g


def _samples(pcm: bytes) -> npt.NDArray[np.int16]:
    if len(pcm) & 1:
        raise ValueError(f"PCM16 data must be a whole number of samples, got {len(pcm)} bytes")
    return np.frombuffer(pcm, dtype="<i2")


def _to_pcm16(values: Floats) -> bytes:
    np.rint(values, out=values)
    np.clip(values, -32768.0, 32767.0, out=values)
    return values.astype("<i2").tobytes()


class StreamResampler:
    """Convert a PCM16 mono stream from ``src_rate`` to ``dst_rate`` with 4 ms delay.

    Feed chunks of any size to :meth:`process`; it returns every output sample they complete
    (``n * dst/src`` samples for ``n`` input samples when that is whole — 160 samples at 8 kHz
    become exactly 480 at 24 kHz and 480 at 24 kHz exactly 160 at 8 kHz). :meth:`flush` drains the
    last ``delay_ms`` still inside the filter at the end of a stream. An odd trailing byte is
    carried to the next call. Equal rates pass chunks through unchanged with zero delay.

    The reduced ratio L/M = dst/src must have L, M ≤ 12 (8/16/24/32/48 kHz in any combination);
    use :func:`resample` for awkward ratios such as 22050 → 8000.
    """

    __slots__ = (
        "_bank",
        "_drain",
        "_hist",
        "_k_next",
        "_n_in",
        "_odd",
        "_taps",
        "delay_ms",
        "down",
        "dst_rate",
        "src_rate",
        "up",
    )

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        up, down = _ratio(src_rate, dst_rate)
        if up > _MAX_FACTOR or down > _MAX_FACTOR:
            raise ValueError(
                f"StreamResampler supports ratios of small integers, not {src_rate}→{dst_rate} "
                "Hz; use resample() offline"
            )
        self.src_rate, self.dst_rate, self.up, self.down = src_rate, dst_rate, up, down
        fast_rate = src_rate * up
        # Half-length in samples at the upsampled rate, a multiple of L·M so that the delay is
        # a whole number of samples at both rates (no filter at all for equal rates).
        half = int(_STREAM_DELAY_S * fast_rate) // (up * down) * (up * down) if up != down else 0
        self.delay_ms: float = 1000.0 * half / fast_rate
        """Algorithmic delay in ms (4.0 for every supported pair; 0.0 for equal rates)."""
        cutoff = min(src_rate, dst_rate) / 2 - _STREAM_TRANSITION_HZ
        offsets = np.arange(-half, half + 1, dtype=np.float64)
        proto = np.sinc(offsets * (2 * cutoff / fast_rate)) * np.kaiser(2 * half + 1, _STREAM_BETA)
        proto *= up / proto.sum()  # unity gain after zero-stuffing by L
        taps = -(-len(proto) // up)  # taps per polyphase branch
        padded = np.zeros(taps * up)
        padded[: len(proto)] = proto
        # Branch p holds proto[p + q·L] for q = 0..taps-1, reversed for np.correlate, quantised,
        # and split by q mod M: consecutive outputs of a branch are M inputs apart, so each
        # residue is a plain correlation over every M-th input (no wasted products).
        bank = np.rint(padded.reshape(taps, up).T[:, ::-1] * _SCALE)
        self._bank: tuple[tuple[Floats, ...], ...] = tuple(
            tuple(np.ascontiguousarray(row[r::down]) for r in range(down)) for row in bank
        )
        self._taps = taps
        self._drain = half // up  # zero inputs that push the last input out of the filter
        self._hist: Floats = np.zeros(taps - 1)
        self._n_in = 0  # input samples consumed so far
        self._k_next = 0  # index of the next output sample
        self._odd = b""

    def process(self, pcm: bytes) -> bytes:
        """Resample the next chunk of the stream; returns the output samples it completes."""
        if self._odd or len(pcm) & 1:
            pcm = self._odd + pcm
            cut = len(pcm) & ~1
            pcm, self._odd = pcm[:cut], pcm[cut:]
        if self.up == self.down:
            return pcm
        return self._run(np.frombuffer(pcm, dtype="<i2"))

    def flush(self) -> bytes:
        """End the stream: return the last ``delay_ms`` of output and reset to a fresh state.

        Returns ``b""`` if nothing was processed since the last reset. A held odd byte is dropped.
        """
        if self.up == self.down or not self._n_in:
            out = b""
        else:
            out = self._run(np.zeros(self._drain, np.int16))
        self.reset()
        return out

    def reset(self) -> None:
        """Forget the stream so far (filter history, odd byte), e.g. after a barge-in."""
        self._hist = np.zeros(self._taps - 1)
        self._n_in = self._k_next = 0
        self._odd = b""

    def _run(self, x: npt.NDArray[np.int16]) -> bytes:
        if not len(x):
            return b""
        up, down, taps = self.up, self.down, self._taps
        buf = np.concatenate((self._hist, x), dtype=np.float64)  # buf[0] is input `start`
        k0 = self._k_next
        start = k0 * down // up - (taps - 1)
        self._n_in += len(x)
        k1 = (up * self._n_in - 1) // down + 1  # outputs whose newest input has arrived
        out = np.empty(k1 - k0)
        # Output k needs inputs up to n = k·M // L and branch (k·M) mod L; outputs k, k+L,
        # k+2L, ... share a branch and step M inputs apart: M correlations per branch.
        for c in range(min(up, k1 - k0)):
            k = k0 + c
            j = k * down // up - (taps - 1) - start
            count = (k1 - k - 1) // up + 1
            branch = out[c::up]
            for r, sub in enumerate(self._bank[k * down % up]):
                part = np.correlate(buf[j + r :: down][: count + len(sub) - 1], sub, "valid")
                if r:
                    branch += part
                else:
                    branch[:] = part
        self._k_next = k1
        self._hist = buf[k1 * down // up - (taps - 1) - start :]
        out *= 1.0 / _SCALE
        return _to_pcm16(out)


def resample(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Resample a whole PCM16 mono signal from ``src_rate`` to ``dst_rate`` (any two rates).

    Offline quality: zero-phase windowed-sinc (Kaiser, 100 dB), cutoff just below the lower of
    the two Nyquist frequencies, pass band flat to 90 % of it. Output has
    ``ceil(n * dst_rate / src_rate)`` samples, sample ``m`` at time ``m / dst_rate`` — no delay.
    Cost ≈ 2–7 ms of CPU per second of audio; not for the live path (it needs the whole
    signal). Equal rates return ``pcm`` itself.
    """
    up, down = _ratio(src_rate, dst_rate)
    x = _samples(pcm)
    if up == down or not len(x):
        return pcm
    nyquist = min(src_rate, dst_rate) / 2
    cutoff = nyquist * (1 + _OFFLINE_PASS) / 2
    transition = nyquist * (1 - _OFFLINE_PASS)
    beta = 0.1102 * (_OFFLINE_ATTENUATION_DB - 8.7)
    # Kaiser's estimate of the span (in seconds) that gives this transition band.
    half_s = (_OFFLINE_ATTENUATION_DB - 8.0) / (2.285 * 2 * math.pi * transition) / 2
    reach = math.ceil(half_s * src_rate) + 1  # input samples needed on each side
    # Branch p: output at fast-rate position k·L + p uses inputs k-reach+1 .. k+reach.
    fast_rate = src_rate * up
    lag = np.arange(reach - 1, -reach - 1, -1, dtype=np.float64) * up  # (k - j)·L
    tau = (np.arange(up, dtype=np.float64)[:, None] + lag[None, :]) / fast_rate  # seconds
    ratio = np.clip(tau / half_s, -1.0, 1.0)
    window = np.where(np.abs(ratio) < 1.0, np.i0(beta * np.sqrt(1 - ratio**2)), 0.0)
    bank = np.sinc(2 * cutoff * tau) * window
    bank /= bank.sum(axis=1, keepdims=True)  # exact unity DC gain for every branch
    padded = np.concatenate((np.zeros(reach), x.astype(np.float64), np.zeros(reach + 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach)
    n_out = (len(x) * up + down - 1) // down
    out = np.empty(n_out)
    # Outputs m, m+L, m+2L, ... share a branch and step M inputs apart: one product per branch.
    for m in range(min(up, n_out)):
        k, branch = divmod(m * down, up)
        count = (n_out - m - 1) // up + 1
        # windows[k + 1] holds inputs k-reach+1 .. k+reach
        out[m::up] = windows[k + 1 :: down][:count] @ bank[branch]
    return _to_pcm16(out)
