"""espeak-ng speech with word timing, for fakes that report when each character is spoken.

:func:`timed_speech` synthesises like :func:`tests.speech.synthesize` and also collects the
``espeakEVENT_WORD`` events espeak-ng passes to its synth callback: for each word, its position
in the text (characters, 1-based) and the sample where it starts. :func:`character_times` turns
those anchors into a start and end time for every character of the text, the shape of
ElevenLabs' ``alignment``.

The library is one instance per process with one global synth callback, shared with callbridge's
offline engine, so synthesis goes through callbridge's own wrapper (:mod:`bridge.audio.espeak`)
on its single espeak thread. Synchronous and clock-free, like every audio helper; callers on an
event loop use ``asyncio.to_thread``.

espeak-ng facts seen here (espeakng_loader 0.2.x): ``text_position`` counts characters (not UTF-8
bytes) from 1; a number can yield several word events at close positions (``#42`` → "hash",
"forty", "two" at 44, 45, 46); ``sample`` is the exact sample index of the word's start at
22050 Hz, ``audio_position`` the same in milliseconds (what the wrapper reports).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.audio.espeak import EXECUTOR, Espeak

__all__ = ["TimedSpeech", "WordStart", "character_times", "timed_speech"]


@dataclass(frozen=True)
class WordStart:
    """A word espeak-ng spoke: its first character (0-based index into the text) and when."""

    index: int
    length: int
    start_s: float


@dataclass(frozen=True)
class TimedSpeech:
    """PCM16 mono at ``rate`` Hz and the words in it, in the order espeak-ng spoke them."""

    pcm: bytes
    rate: int
    words: tuple[WordStart, ...]

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.rate


@functools.lru_cache(maxsize=256)
def timed_speech(text: str, *, voice: str = "en-us", rate_wpm: int = 150) -> TimedSpeech:
    """Speak ``text`` with espeak-ng (native 22050 Hz) and record when each word starts.

    Blocking; must not be called from the espeak thread itself (it waits on it)."""

    def synth() -> TimedSpeech:
        engine = Espeak.get()
        pcm, events = engine.synth_events(text, voice, rate_wpm)
        words = tuple(WordStart(index, length, ms / 1000) for index, length, ms in events)
        return TimedSpeech(pcm, engine.rate, words)

    return EXECUTOR.submit(synth).result()


def character_times(
    length: int, words: Sequence[WordStart], duration_s: float
) -> tuple[list[float], list[float]]:
    """Start and end (seconds) of each of ``length`` characters.

    Word starts are anchors; the characters from one anchor to the next (the word, then the
    spaces and punctuation after it) share the time between the two anchors evenly. Characters
    before the first word share the time before it; the last word runs to ``duration_s``.
    Without anchors the characters are spread evenly over the whole duration. Starts never
    decrease and each character ends where the next starts.
    """
    anchors: list[tuple[int, float]] = []
    for word in sorted(words, key=lambda w: (w.index, w.start_s)):
        if not 0 <= word.index < length:
            continue
        if anchors and word.index <= anchors[-1][0]:
            continue  # a second event at the same position ("42" → "forty", "two")
        start = max(word.start_s, anchors[-1][1] if anchors else 0.0)
        anchors.append((word.index, min(start, duration_s)))
    if not anchors or anchors[0][0] != 0:
        anchors.insert(0, (0, 0.0))
    anchors.append((length, duration_s))
    starts: list[float] = []
    ends: list[float] = []
    for (first, t0), (stop, t1) in itertools.pairwise(anchors):
        step = (t1 - t0) / (stop - first) if stop > first else 0.0
        for k in range(stop - first):
            starts.append(t0 + k * step)
            ends.append(t0 + (k + 1) * step)
    return starts, ends
