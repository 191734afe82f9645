"""Cost per 20 ms frame of the live audio paths in bridge.audio, and soxr for comparison.

Run: ``python bench/audio_bench.py`` (add ``--quick`` for a fast, noisier run). Prints the best of
several timing rounds in µs per 20 ms frame, the algorithmic delay of each resampling path, and,
if ``soxr`` is importable (a test-only dependency), how soxr's HQ ResampleStream behaves when fed
20 ms chunks: how many chunks it swallows before the first output, how late an impulse comes
out compared with the input, and its cost. One-shot ``resample()`` is timed per second of audio.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import timeit
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from bridge.audio.framing import Framer
from bridge.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from bridge.audio.resample import StreamResampler, resample
from bridge.audio.transcode import Transcoder

PAIRS = [(8000, 24000), (24000, 8000), (8000, 16000), (16000, 8000), (16000, 24000), (24000, 16000)]


def speechlike(rate: int, seconds: float, seed: int = 1) -> bytes:
    """Band-limited (< 3.4 kHz) noise at about −12 dBFS: as costly as real speech."""
    n = round(rate * seconds)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum[np.fft.rfftfreq(n, 1 / rate) > 3400] = 0
    x = np.fft.irfft(spectrum, n)
    return bytes(np.rint(x / np.abs(x).max() * 8000).astype("<i2").tobytes())


def frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data) - size + 1, size)]


T = TypeVar("T")


def per_frame_us(step: Callable[[T], object], chunks: Sequence[T], rounds: int) -> float:
    """Best-of-``rounds`` mean time of ``step`` over ``chunks``, in µs per call."""

    def run() -> None:
        for chunk in chunks:
            step(chunk)

    return min(timeit.repeat(run, number=1, repeat=rounds)) / len(chunks) * 1e6


def row(label: str, us: float, note: str = "") -> None:
    print(f"  {label:<40} {us:8.2f}   {note}")


def soxr_report(src: int, dst: int, rounds: int) -> str:
    import soxr  # type: ignore[import-untyped]  # test-only dependency, no stubs

    step_in = src // 50
    impulse = np.zeros(step_in * 20, dtype=np.int16)
    impulse[0] = 16000
    stream = soxr.ResampleStream(src, dst, 1, dtype="int16", quality="HQ")
    outputs = [
        stream.resample_chunk(impulse[i : i + step_in]) for i in range(0, len(impulse), step_in)
    ]
    first = next(i for i, out in enumerate(outputs) if len(out))  # chunks swallowed
    peak_ms = int(np.argmax(np.abs(np.concatenate(outputs)))) / dst * 1000
    sizes = sorted({len(out) for out in outputs[first + 1 :]})
    # Played as produced, the impulse is heard `first` chunks late plus its position in the output.
    delay_ms = first * 20 + peak_ms
    pcm = np.frombuffer(speechlike(src, 1.0), dtype=np.int16)
    chunks = [pcm[i : i + step_in] for i in range(0, len(pcm), step_in)]
    stream = soxr.ResampleStream(src, dst, 1, dtype="int16", quality="HQ")
    cost = per_frame_us(stream.resample_chunk, chunks, rounds)
    return (
        f"soxr HQ {src:>5}→{dst:<5}  first output after {first + 1} chunks, impulse out "
        f"{delay_ms:5.1f} ms late (ours 4.0), later chunk sizes {sizes[0]}–{sizes[-1]} samples, "
        f"{cost:6.1f} µs/frame"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (noisier)")
    rounds = 3 if parser.parse_args().quick else 15

    pcm8 = speechlike(8000, 1.0)
    ulaw = pcm16_to_ulaw(pcm8)
    print(f"µs per 20 ms frame (best of {rounds} rounds over 1 s of audio)")
    row("μ-law decode (160 B → 320 B)", per_frame_us(ulaw_to_pcm16, frames(ulaw, 160), rounds))
    row("μ-law encode (320 B → 160 B)", per_frame_us(pcm16_to_ulaw, frames(pcm8, 320), rounds))
    row("Framer.push, one whole frame", per_frame_us(Framer(160).push, frames(ulaw, 160), rounds))

    for src, dst in PAIRS:
        rs = StreamResampler(src, dst)
        cost = per_frame_us(rs.process, frames(speechlike(src, 1.0), src // 25), rounds)
        row(f"StreamResampler {src}→{dst}", cost, f"delay {rs.delay_ms} ms")

    for src_fmt, dst_fmt, data, size in [
        ("pcmu", "pcm16/24000", ulaw, 160),
        ("pcm16/24000", "pcmu", speechlike(24000, 1.0), 960),
        ("pcmu", "pcm16/16000", ulaw, 160),
        ("pcm16/16000", "pcmu", speechlike(16000, 1.0), 640),
        ("pcmu", "pcmu", ulaw, 160),
    ]:
        tc = Transcoder(src_fmt, dst_fmt)
        cost = per_frame_us(tc.convert, frames(data, size), rounds)
        row(f"Transcoder {src_fmt} → {dst_fmt}", cost, f"delay {tc.delay_ms} ms")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    state: tuple[int, tuple[tuple[int, int], ...]] | None = None

    def ratecv(chunk: bytes) -> None:
        nonlocal state
        _, state = audioop.ratecv(chunk, 2, 1, 24000, 8000, state)

    cost = per_frame_us(ratecv, frames(speechlike(24000, 1.0), 960), rounds)
    row("audioop.ratecv 24000→8000", cost, "no anti-alias filter")

    for src, dst in [(22050, 8000), (44100, 16000), (8000, 24000)]:
        pcm = speechlike(src, 1.0)
        one_shot = functools.partial(resample, pcm, src, dst)
        ms = min(timeit.repeat(one_shot, number=1, repeat=rounds)) * 1e3
        print(f"resample() one-shot {src}→{dst}: {ms:.1f} ms CPU per second of audio")

    if importlib.util.find_spec("soxr") is None:
        print("soxr not installed: no comparison")
        return
    for src, dst in [(8000, 24000), (24000, 8000), (8000, 16000), (16000, 8000)]:
        print(soxr_report(src, dst, rounds))


if __name__ == "__main__":
    main()
