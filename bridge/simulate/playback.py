"""A clock-free model of Twilio's outbound playback buffer (sans-I/O).

Twilio plays the audio a bridge sends at exactly real-time rate, in order, from the moment it is
queued or from when the previous audio finished, whichever is later; a ``mark`` is reached when
all audio queued before it has played; ``clear`` drops what has not played yet and answers every
pending mark at once. :class:`PlaybackBuffer` reproduces that with time passed in as ``now``
(seconds, any monotonic origin), so it can be driven by a fake clock in tests and by
``time.monotonic()`` in :mod:`bridge.simulate.caller`.

Timing is exact, not accumulated: audio that plays back to back forms a *run* anchored at the
time it started, and the bytes played at ``now`` are ``floor((now - run_start) * rate)``. Offsets
inside a run are integers, so a long call never drifts by float rounding.

:class:`TurnTimer` is the other clock-free model the simulator needs: the response latency of
each caller turn, from the last voiced frame sent to the first agent audio received after it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import chain

__all__ = ["MarkReached", "PlaybackBuffer", "PlaybackItem", "PlayedAudio", "TurnTimer"]

# Guards floor() against products like 7999.999999999 for what is exactly 8000 bytes; far below
# one byte, so playback can never run ahead of real time by a measurable amount.
_EPSILON_BYTES = 1e-6


@dataclass(frozen=True, slots=True)
class PlayedAudio:
    """``data`` finished playing; its first byte started playing at ``started_at``."""

    data: bytes
    started_at: float


@dataclass(frozen=True, slots=True)
class MarkReached:
    """Playback reached the mark ``name`` at ``at`` (all audio queued before it had played)."""

    name: str
    at: float


PlaybackItem = PlayedAudio | MarkReached


@dataclass(slots=True)
class _Audio:
    data: bytes
    run_start: float
    offset: int  # byte offset of data[0] inside its run
    reported: int = 0  # bytes of data already returned by advance()


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str
    run_start: float
    offset: int  # the mark is reached once `offset` bytes of its run have played


class PlaybackBuffer:
    """Twilio's outbound buffer as a pure state machine over (``now``, audio, marks)."""

    def __init__(self, bytes_per_ms: int = 8) -> None:
        if bytes_per_ms <= 0:
            raise ValueError("bytes_per_ms must be positive")
        self.bytes_per_ms = bytes_per_ms
        self._rate = bytes_per_ms * 1000.0  # bytes per second
        self._queue: deque[_Audio | _Mark] = deque()
        self._run_start = -math.inf  # only the newest run can still be playing
        self._run_bytes = 0
        self._ready: list[PlaybackItem] = []  # settled by clear(), returned by the next advance()
        self.played_bytes = 0
        """Bytes returned as played by :meth:`advance` (and settled by :meth:`clear`) so far."""

    # -- input -------------------------------------------------------------------------------

    def enqueue_audio(self, data: bytes, now: float) -> None:
        """Queue ``data`` (raw μ-law) behind what is queued; it starts no earlier than ``now``."""
        if not data:
            return
        self._open_run(now)
        self._queue.append(_Audio(bytes(data), self._run_start, self._run_bytes))
        self._run_bytes += len(data)

    def enqueue_mark(self, name: str, now: float) -> None:
        """Queue the mark ``name``; it is reached when the audio queued so far has played."""
        self._open_run(now)
        self._queue.append(_Mark(name, self._run_start, self._run_bytes))

    def clear(self, now: float) -> list[str]:
        """Drop all audio not played by ``now``; return the names of the marks still pending.

        What did play before ``now`` (audio and reached marks) is kept and returned by the next
        :meth:`advance`, so nothing the caller heard is lost from the record.
        """
        self._ready.extend(self._collect(now))
        flushed = [item.name for item in self._queue if isinstance(item, _Mark)]
        self._queue.clear()
        self._run_start = -math.inf
        self._run_bytes = 0
        return flushed

    # -- output ------------------------------------------------------------------------------

    def advance(self, now: float) -> list[PlaybackItem]:
        """Return, in play order, the audio played and the marks reached since the last call."""
        items = self._ready + self._collect(now)
        self._ready = []
        return items

    def queued_ms(self, now: float) -> float:
        """Milliseconds of queued audio not yet played at ``now`` (0.0 when idle)."""
        remaining = self._run_bytes - self._played_in_run(now)
        return max(0, remaining) / self.bytes_per_ms

    def playing(self, now: float) -> bool:
        """Whether audio is playing at ``now``."""
        return self.queued_ms(now) > 0

    def idle_at(self) -> float:
        """When the queued audio will have finished playing (``-inf`` if nothing was queued)."""
        return self._run_start + self._run_bytes / self._rate

    def next_event_time(self) -> float | None:
        """When the next pending mark is reached, or ``None`` if no mark is pending."""
        for item in chain(self._ready, self._queue):
            if isinstance(item, MarkReached):
                return item.at  # settled by clear(), already due
            if isinstance(item, _Mark):
                return item.run_start + item.offset / self._rate
        return None

    # -- internals ---------------------------------------------------------------------------

    def _open_run(self, now: float) -> None:
        """Start a new run at ``now`` if everything queued so far has played (player idle)."""
        if self.idle_at() <= now:
            self._run_start = now
            self._run_bytes = 0

    def _played_in_run(self, now: float) -> int:
        if self._run_bytes == 0 or now <= self._run_start:
            return 0
        return min(
            self._run_bytes, math.floor((now - self._run_start) * self._rate + _EPSILON_BYTES)
        )

    def _collect(self, now: float) -> list[PlaybackItem]:
        items: list[PlaybackItem] = []
        while self._queue:
            head = self._queue[0]
            played = -1  # `now` is before this run began: not even a mark at offset 0 is due
            if now >= head.run_start:
                played = math.floor((now - head.run_start) * self._rate + _EPSILON_BYTES)
            if isinstance(head, _Mark):
                if played < head.offset:
                    break
                items.append(MarkReached(head.name, head.run_start + head.offset / self._rate))
                self._queue.popleft()
                continue
            upto = min(len(head.data), played - head.offset)
            if upto > head.reported:
                start = head.run_start + (head.offset + head.reported) / self._rate
                items.append(PlayedAudio(head.data[head.reported : upto], start))
                self.played_bytes += upto - head.reported
                head.reported = upto
            if head.reported < len(head.data):
                break
            self._queue.popleft()
        return items


class TurnTimer:
    """Response latency without a clock: last voiced caller frame → first agent audio after it.

    The caller feeds every frame it sends (voiced or not) and every agent audio arrival, with the
    time it happened. An utterance ends after ``hangover_frames`` unvoiced frames; agent audio that
    arrives in a pause inside the utterance does not count, since the next voiced frame resets it.
    A turn the agent never answers is dropped when the caller speaks again.
    """

    def __init__(self, hangover_frames: int = 30) -> None:
        self.hangover_frames = hangover_frames
        self.latencies_ms: list[float] = []
        self.in_utterance = False
        self._last_voiced: float | None = None  # of the current or still unanswered utterance
        self._reply: float | None = None
        self._unvoiced = 0

    def on_frame(self, voiced: bool, now: float) -> str | None:
        """Account one sent frame; return ``"speech"`` / ``"speech_end"`` on a boundary."""
        if voiced:
            started = not self.in_utterance
            self.in_utterance, self._last_voiced, self._reply, self._unvoiced = True, now, None, 0
            return "speech" if started else None
        if not self.in_utterance:
            return None
        self._unvoiced += 1
        if self._unvoiced < self.hangover_frames:
            return None
        self.in_utterance = False
        if self._reply is not None:
            self._record()
        return "speech_end"

    def on_agent_audio(self, now: float) -> None:
        """Account agent audio arriving at ``now``."""
        if self._last_voiced is None or self._reply is not None:
            return
        self._reply = now
        if not self.in_utterance:
            self._record()

    def finish(self) -> None:
        """The call ends: an utterance still in its hangover counts if it was answered."""
        if self.in_utterance and self._reply is not None:
            self._record()
        self.in_utterance = False

    def _record(self) -> None:
        assert self._last_voiced is not None
        assert self._reply is not None
        self.latencies_ms.append((self._reply - self._last_voiced) * 1000.0)
        self._last_voiced = self._reply = None
