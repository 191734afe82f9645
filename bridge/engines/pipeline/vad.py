"""Local voice activity detection for turns and barge-in (webrtcvad), clock-free.

Positions are milliseconds of caller audio fed, never wall time. ``endpointing_sensitivity``
sets how long a pause ends the caller's turn; ``interrupt_sensitivity`` how much speech it takes
to interrupt the agent while it talks (short noises should not cut it off).
"""

from __future__ import annotations

from typing import Literal

from bridge.audio import g711

ENDPOINTING_MS = {"sensitive": 350, "auto": 600, "relaxed": 1000}
"""Silence that ends the caller's turn."""
INTERRUPT_MS = {"high": 120, "low": 360}
"""Speech that interrupts the agent while it talks."""
START_MS = 100
"""Speech that opens a caller turn while the agent is silent."""

VadEvent = Literal["start", "end"]


class TurnDetector:
    """μ-law 8 kHz in 20 ms frames → ``"start"`` / ``"end"`` of caller speech."""

    FRAME_BYTES = 160

    def __init__(
        self,
        *,
        endpointing: str = "auto",
        interrupt: str = "high",
        aggressiveness: int = 2,
    ) -> None:
        import webrtcvad  # type: ignore[import-untyped]

        if endpointing not in ENDPOINTING_MS:
            raise ValueError(f"endpointing_sensitivity must be one of {', '.join(ENDPOINTING_MS)}")
        if interrupt not in INTERRUPT_MS:
            raise ValueError(f"interrupt_sensitivity must be one of {', '.join(INTERRUPT_MS)}")
        self._vad = webrtcvad.Vad(aggressiveness)
        self.end_ms = ENDPOINTING_MS[endpointing]
        self.interrupt_ms = INTERRUPT_MS[interrupt]
        self.speaking = False
        self._voiced_ms = 0
        self._silent_ms = 0
        self._pending = b""
        self.position_ms = 0
        self.onset_ms = 0
        """Where the voiced run that opened the current turn began (its first voiced frame)."""

    def feed(self, ulaw: bytes, *, agent_speaking: bool = False) -> list[VadEvent]:
        data = self._pending + ulaw
        out: list[VadEvent] = []
        end = len(data) - len(data) % self.FRAME_BYTES
        for start in range(0, end, self.FRAME_BYTES):
            frame = g711.ulaw_to_pcm16(data[start : start + self.FRAME_BYTES])
            event = self._frame(self._vad.is_speech(frame, 8000), agent_speaking)
            if event is not None:
                out.append(event)
        self._pending = data[end:]
        return out

    def _frame(self, voiced: bool, agent_speaking: bool) -> VadEvent | None:
        self.position_ms += 20
        if not self.speaking:
            if voiced and self._voiced_ms == 0:
                self.onset_ms = self.position_ms - 20
            # consecutive-ish speech: a silent frame costs twice what a voiced one earns
            self._voiced_ms = self._voiced_ms + 20 if voiced else max(0, self._voiced_ms - 40)
            needed = self.interrupt_ms if agent_speaking else START_MS
            if self._voiced_ms >= needed:
                self.speaking = True
                self._silent_ms = 0
                return "start"
            return None
        self._silent_ms = 0 if voiced else self._silent_ms + 20
        if self._silent_ms >= self.end_ms:
            self.speaking = False
            self._voiced_ms = 0
            return "end"
        return None
