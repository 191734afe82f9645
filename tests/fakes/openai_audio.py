"""Audio for the fake OpenAI Realtime server: session formats, a scripted energy VAD, and
speech recognition off the event loop.

Formats and VAD are pure and clock-free: positions are milliseconds of *input stream*, never
wall time, so a test that appends audio faster than real time sees the same events as one that
paces it.
"""

from __future__ import annotations

import asyncio
import functools
import math
import multiprocessing as mp
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .common import audioop, speech

__all__ = [
    "AudioFormat",
    "EnergyVad",
    "VadEvent",
    "recognize_off_loop",
    "rms",
    "warm_up_recognizer",
]

FormatType = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]


@dataclass(frozen=True)
class AudioFormat:
    """One of the GA ``RealtimeAudioFormats``: PCM16 24 kHz, μ-law 8 kHz or A-law 8 kHz."""

    type: FormatType

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> AudioFormat:
        kind = (config or {}).get("type") or "audio/pcm"
        if kind == "audio/pcmu":
            return cls("audio/pcmu")
        if kind == "audio/pcma":
            return cls("audio/pcma")
        if kind == "audio/pcm":
            return cls("audio/pcm")
        raise ValueError(f"unsupported audio format {kind!r}")

    @property
    def rate(self) -> int:
        return 24000 if self.type == "audio/pcm" else 8000

    @property
    def bytes_per_ms(self) -> int:
        """8 for G.711 (one byte per 8 kHz sample), 48 for PCM16 at 24 kHz."""
        return 48 if self.type == "audio/pcm" else 8

    def duration_ms(self, nbytes: int) -> float:
        return nbytes / self.bytes_per_ms

    def to_pcm16(self, data: bytes) -> bytes:
        """Decode wire bytes to PCM16 at :attr:`rate`."""
        if self.type == "audio/pcmu":
            return audioop.ulaw2lin(data, 2)
        if self.type == "audio/pcma":
            return audioop.alaw2lin(data, 2)
        return data[: len(data) - len(data) % 2]

    def from_pcm16(self, pcm16: bytes) -> bytes:
        """Encode PCM16 at :attr:`rate` to wire bytes."""
        if self.type == "audio/pcmu":
            return audioop.lin2ulaw(pcm16, 2)
        if self.type == "audio/pcma":
            return audioop.lin2alaw(pcm16, 2)
        return pcm16

    def speak(self, text: str) -> bytes:
        """``text`` synthesized (espeak-ng) in this format."""
        if self.type == "audio/pcmu":
            return speech.synthesize_ulaw8k(text)
        return self.from_pcm16(speech.synthesize_pcm(text, self.rate))

    def silence(self, ms: int) -> bytes:
        n = ms * self.rate // 1000
        if self.type == "audio/pcmu":
            return b"\xff" * n
        if self.type == "audio/pcma":
            return b"\xd5" * n
        return b"\x00\x00" * n


def rms(pcm16: bytes) -> float:
    """Root-mean-square amplitude of PCM16 samples (0 for no samples)."""
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    return math.sqrt(float(np.mean(samples * samples))) if samples.size else 0.0


@dataclass(frozen=True)
class VadEvent:
    """``started`` at ``ms`` (speech onset minus prefix padding) or ``stopped`` at ``ms``."""

    kind: Literal["started", "stopped"]
    ms: int


class EnergyVad:
    """RMS over 20 ms windows: speech after ``speech_ms`` of loud windows, silence after
    ``silence_ms`` of quiet ones. Feed decoded PCM16 of any length; get events with stream
    positions. ``started.ms`` subtracts ``prefix_padding_ms`` (as OpenAI's ``audio_start_ms``
    includes it); ``stopped.ms`` is where the silence run completed (OpenAI's ``audio_end_ms``
    includes the silence duration)."""

    WINDOW_MS = 20

    def __init__(
        self,
        rate: int,
        *,
        threshold_rms: float = 300.0,
        speech_ms: int = 60,
        silence_ms: int = 500,
        prefix_padding_ms: int = 300,
    ) -> None:
        self.rate = rate
        self.threshold_rms = threshold_rms
        self.speech_ms = speech_ms
        self.silence_ms = silence_ms
        self.prefix_padding_ms = prefix_padding_ms
        self._window_bytes = rate * 2 * self.WINDOW_MS // 1000
        self._pending = b""
        self.position_ms = 0
        """Milliseconds of input consumed into whole windows so far."""
        self.in_speech = False
        self._loud_ms = 0
        self._loud_since = 0
        self._quiet_ms = 0

    def reset(self) -> None:
        """Forget any partial utterance (``input_audio_buffer.clear``); position is kept."""
        self._pending = b""
        self.in_speech = False
        self._loud_ms = self._quiet_ms = 0

    def feed(self, pcm16: bytes) -> list[VadEvent]:
        data = self._pending + pcm16
        events: list[VadEvent] = []
        step = self._window_bytes
        whole = len(data) - len(data) % step
        for start in range(0, whole, step):
            event = self._window(rms(data[start : start + step]) >= self.threshold_rms)
            if event is not None:
                events.append(event)
        self._pending = data[whole:]
        return events

    def _window(self, loud: bool) -> VadEvent | None:
        begin = self.position_ms
        self.position_ms += self.WINDOW_MS
        if not self.in_speech:
            if not loud:
                self._loud_ms = 0
                return None
            if self._loud_ms == 0:
                self._loud_since = begin
            self._loud_ms += self.WINDOW_MS
            if self._loud_ms >= self.speech_ms:
                self.in_speech = True
                self._quiet_ms = 0
                return VadEvent("started", max(0, self._loud_since - self.prefix_padding_ms))
            return None
        if loud:
            self._quiet_ms = 0
            return None
        self._quiet_ms += self.WINDOW_MS
        if self._quiet_ms >= self.silence_ms:
            self.in_speech = False
            self._loud_ms = 0
            return VadEvent("stopped", self.position_ms)
        return None


# --------------------------------------------------------------------------- recognition

_POOL: ProcessPoolExecutor | None = None


def _pool() -> ProcessPoolExecutor:
    global _POOL  # noqa: PLW0603 - one recognizer process shared by every fake in the run
    if _POOL is None:
        # The worker unpickles `<module>.recognize` by module name; make that name importable
        # there whatever pytest's import mode did to sys.path here (a builtin initializer,
        # because a function of ours would need the same path to be unpickled).
        root = Path(speech.__file__).resolve().parents[speech.__name__.count(".")]
        setup = f"import sys\nif {str(root)!r} not in sys.path: sys.path.insert(0, {str(root)!r})"
        _POOL = ProcessPoolExecutor(
            max_workers=1,
            mp_context=mp.get_context("spawn"),
            initializer=functools.partial(exec, setup, {}),
        )
    return _POOL


def warm_up_recognizer() -> None:
    """Start the recognizer process and load its decoder in the background (≈0.7 s)."""
    _pool().submit(speech.recognize, b"", 8000)


async def recognize_off_loop(pcm16: bytes, rate: int, phrases: Sequence[str] | None) -> str:
    """:func:`speech.recognize` in a separate process.

    pocketsphinx holds the GIL inside ``end_utt`` (≈125 ms with the full LM), so a thread would
    stall the event loop that the bridge under test shares with the fake; a process does not.
    """
    global _POOL  # noqa: PLW0603 - replaced if the worker died
    call = functools.partial(speech.recognize, pcm16, rate, grammar_words=phrases)
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(_pool(), call)
    except BrokenProcessPool:
        _POOL = None
        return await loop.run_in_executor(_pool(), call)
