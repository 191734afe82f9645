"""Words of synthesized speech with their timing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Word:
    """A word of synthesized speech and where it sits in that speech, in milliseconds."""

    text: str
    start_ms: float
    end_ms: float
