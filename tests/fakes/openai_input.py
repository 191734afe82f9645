"""The input audio buffer of one fake session: uncommitted audio, stream positions and the VAD.

Pure (no I/O, no clock). Positions are milliseconds of audio appended since the session
started — OpenAI's ``audio_start_ms``/``audio_end_ms`` — whatever the wall clock did.
"""

from __future__ import annotations

from typing import Any

from .openai_audio import AudioFormat, EnergyVad, VadEvent

__all__ = ["InputBuffer"]

_EAGERNESS_SILENCE_MS = {"low": 1000, "medium": 500, "auto": 500, "high": 250}
_IDLE_KEEP_MS = 1000  # audio kept while nobody speaks (covers any prefix padding)


class InputBuffer:
    """``append`` wire bytes, get VAD events; take the utterance (VAD) or everything (commit)."""

    def __init__(self, *, threshold_rms: float, speech_ms: int) -> None:
        self.threshold_rms = threshold_rms
        self.speech_ms = speech_ms
        self.format = AudioFormat("audio/pcm")
        self.vad: EnergyVad | None = None
        self._pcm = bytearray()  # PCM16 at self.format.rate
        self._start_ms = 0  # stream position of self._pcm[0]
        self._manual_ms = 0.0  # stream position while there is no VAD
        self._utterance_start_ms = 0

    @property
    def position_ms(self) -> int:
        return self.vad.position_ms if self.vad else int(self._manual_ms)

    @property
    def duration_ms(self) -> float:
        """Uncommitted audio held."""
        return len(self._pcm) / 2 * 1000 / self.format.rate

    def configure(self, fmt: AudioFormat, turn_detection: dict[str, Any] | None) -> None:
        """Apply the session's input format and turn detection (VAD state restarts)."""
        position = self.position_ms
        if fmt != self.format:
            self.format = fmt
            self._pcm.clear()
            self._start_ms = position
        if turn_detection is None:
            self.vad = None
            self._manual_ms = float(position)
            return
        silence = turn_detection.get("silence_duration_ms") or _EAGERNESS_SILENCE_MS.get(
            turn_detection.get("eagerness") or "auto", 500
        )
        self.vad = EnergyVad(
            fmt.rate,
            threshold_rms=self.threshold_rms,
            speech_ms=self.speech_ms,
            silence_ms=int(silence),
            prefix_padding_ms=int(turn_detection.get("prefix_padding_ms") or 0),
        )
        self.vad.position_ms = position

    def append(self, wire: bytes) -> list[VadEvent]:
        if self.vad is not None and not self.vad.in_speech and self.duration_ms > 2 * _IDLE_KEEP_MS:
            self._drop_before(self.vad.position_ms - _IDLE_KEEP_MS)
        pcm = self.format.to_pcm16(wire)
        self._pcm += pcm
        if self.vad is None:
            self._manual_ms += self.format.duration_ms(len(wire))
            return []
        events = self.vad.feed(pcm)
        for event in events:
            if event.kind == "started":
                self._utterance_start_ms = max(event.ms, self._start_ms)
        return events

    def take_utterance(self, end_ms: int) -> bytes:
        """PCM16 from the last ``started`` (prefix padding included) to ``end_ms``."""
        pcm = self._slice(self._utterance_start_ms, end_ms)
        self._drop_before(end_ms)
        return pcm

    def take_all(self) -> bytes:
        """Everything held (``input_audio_buffer.commit``); a partial utterance is forgotten."""
        pcm = bytes(self._pcm)
        self.clear()
        return pcm

    def clear(self) -> None:
        self._pcm.clear()
        self._start_ms = self.position_ms
        if self.vad is not None:
            self.vad.reset()

    def _offset(self, ms: int) -> int:
        return max(0, int((ms - self._start_ms) * self.format.rate / 1000) * 2)

    def _slice(self, start_ms: int, end_ms: int) -> bytes:
        lo = self._offset(start_ms)
        return bytes(self._pcm[lo : max(lo, self._offset(end_ms))])

    def _drop_before(self, ms: int) -> None:
        del self._pcm[: self._offset(ms)]
        self._start_ms = max(self._start_ms, ms)
