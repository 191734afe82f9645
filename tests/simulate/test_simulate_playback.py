"""PlaybackBuffer and TurnTimer: pure models driven by an injected clock (seconds as floats)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.simulate.playback import (
    MarkReached,
    PlaybackBuffer,
    PlaybackItem,
    PlayedAudio,
    TurnTimer,
)

AUDIO = bytes(range(256)) * 40  # 10240 B = 1.28 s, distinct bytes to check order


def audio_of(items: list[PlaybackItem]) -> bytes:
    return b"".join(i.data for i in items if isinstance(i, PlayedAudio))


def marks_of(items: list[PlaybackItem]) -> list[str]:
    return [i.name for i in items if isinstance(i, MarkReached)]


def test_plays_at_eight_bytes_per_ms_from_enqueue() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(AUDIO[:1600], 10.0)
    assert pb.advance(10.0) == []
    assert pb.advance(10.1) == [PlayedAudio(AUDIO[:800], 10.0)]
    assert pb.played_bytes == 800
    assert pb.queued_ms(10.1) == pytest.approx(100.0)
    assert pb.playing(10.1)
    assert pb.advance(10.5) == [PlayedAudio(AUDIO[800:1600], 10.1)]
    assert pb.played_bytes == 1600
    assert pb.queued_ms(10.5) == 0.0
    assert not pb.playing(10.5)
    assert pb.advance(11.0) == []


def test_back_to_back_audio_continues_without_gap() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(AUDIO[:160], 0.0)
    pb.enqueue_audio(AUDIO[160:320], 0.005)  # arrives while the first chunk plays
    assert pb.idle_at() == pytest.approx(0.04)
    items = pb.advance(1.0)
    assert items == [PlayedAudio(AUDIO[:160], 0.0), PlayedAudio(AUDIO[160:320], 0.02)]


def test_audio_after_idle_starts_when_queued() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(AUDIO[:160], 0.0)
    pb.enqueue_audio(AUDIO[:80], 1.0)  # the player idled from 0.02 s to 1.0 s
    items = pb.advance(2.0)
    assert [i.started_at for i in items if isinstance(i, PlayedAudio)] == [0.0, 1.0]
    assert pb.played_bytes == 240


def test_mark_reached_when_audio_before_it_has_played() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(AUDIO[:8000], 0.0)  # 1 s
    pb.enqueue_mark("m1", 0.3)
    assert pb.next_event_time() == pytest.approx(1.0)
    assert marks_of(pb.advance(0.999)) == []
    items = pb.advance(1.0)
    assert items[-1] == MarkReached("m1", 1.0)
    assert pb.next_event_time() is None


def test_mark_on_idle_player_is_reached_at_once() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_mark("now", 3.0)
    assert pb.next_event_time() == 3.0
    assert pb.advance(3.0) == [MarkReached("now", 3.0)]


def test_marks_interleave_with_audio_in_order() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(AUDIO[:160], 0.0)
    pb.enqueue_mark("a", 0.0)
    pb.enqueue_audio(AUDIO[160:480], 0.0)
    pb.enqueue_mark("b", 0.0)
    items = pb.advance(0.1)
    assert items == [
        PlayedAudio(AUDIO[:160], 0.0),
        MarkReached("a", 0.02),
        PlayedAudio(AUDIO[160:480], 0.02),
        MarkReached("b", 0.06),
    ]


def test_clear_drops_unplayed_audio_and_returns_pending_marks() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(AUDIO[:800], 0.0)  # 100 ms
    pb.enqueue_mark("a", 0.0)
    pb.enqueue_audio(AUDIO[800:8800], 0.0)  # 1 s
    pb.enqueue_mark("b", 0.0)
    pb.enqueue_mark("c", 0.0)
    assert pb.clear(0.5) == ["b", "c"]
    # What played before the clear is still reported, with the reached mark, in order.
    assert pb.next_event_time() == pytest.approx(0.1)
    items = pb.advance(0.5)
    assert items == [
        PlayedAudio(AUDIO[:800], 0.0),
        MarkReached("a", 0.1),
        PlayedAudio(AUDIO[800:4000], 0.1),
    ]
    assert pb.played_bytes == 4000
    assert pb.queued_ms(0.5) == 0.0
    assert pb.advance(5.0) == []
    assert pb.next_event_time() is None
    # After a clear the player is idle: new audio starts when queued.
    pb.enqueue_audio(AUDIO[:160], 0.6)
    assert pb.advance(1.0) == [PlayedAudio(AUDIO[:160], 0.6)]


def test_clear_when_idle_and_partial_reports() -> None:
    pb = PlaybackBuffer()
    assert pb.clear(0.0) == []
    pb.enqueue_audio(AUDIO[:1600], 1.0)
    assert audio_of(pb.advance(1.05)) == AUDIO[:400]
    assert pb.clear(1.1) == []
    assert pb.advance(1.1) == [PlayedAudio(AUDIO[400:800], 1.05)]


def test_ignores_empty_audio_and_time_before_queueing() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(b"", 0.0)
    assert pb.idle_at() == -math.inf
    assert pb.queued_ms(0.0) == 0.0
    pb.enqueue_audio(AUDIO[:160], 5.0)
    assert pb.advance(4.0) == []
    assert pb.queued_ms(4.0) == 20.0
    later = PlaybackBuffer()
    later.enqueue_mark("m", 5.0)
    assert later.advance(4.0) == []
    assert later.advance(5.0) == [MarkReached("m", 5.0)]


def test_other_rates() -> None:
    pb = PlaybackBuffer(bytes_per_ms=16)
    pb.enqueue_audio(AUDIO[:320], 0.0)
    assert pb.idle_at() == pytest.approx(0.02)
    with pytest.raises(ValueError, match="positive"):
        PlaybackBuffer(bytes_per_ms=0)


def test_long_call_does_not_drift() -> None:
    pb = PlaybackBuffer()
    for i in range(30_000):  # 10 minutes of 20 ms chunks queued back to back
        pb.enqueue_audio(AUDIO[:160], i * 0.0199)
    pb.enqueue_mark("end", 600.0)
    assert pb.next_event_time() == pytest.approx(600.0, abs=1e-9)
    assert pb.advance(600.0)[-1] == MarkReached("end", 600.0)


# -- properties ----------------------------------------------------------------------------

ops = st.lists(
    st.tuples(
        st.integers(0, 300),  # ms since the previous operation
        st.sampled_from(["audio", "audio", "mark", "advance", "clear"]),
        st.integers(1, 2400),  # audio size in bytes
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_property_never_plays_ahead_of_time_and_marks_stay_in_order(
    script: list[tuple[int, str, int]],
) -> None:
    pb = PlaybackBuffer()
    now_ms, first_ms = 0, None
    sent_marks: list[str] = []
    answered: list[str] = []
    queued = played = b""
    cleared = False
    items: list[PlaybackItem] = []
    for dt, kind, size in script:
        now_ms += dt
        now = now_ms / 1000
        if kind == "audio":
            chunk = bytes((len(queued) + i) % 251 for i in range(size))
            queued += chunk
            pb.enqueue_audio(chunk, now)
            first_ms = now_ms if first_ms is None else first_ms
        elif kind == "mark":
            sent_marks.append(f"m{len(sent_marks)}")
            pb.enqueue_mark(sent_marks[-1], now)
        elif kind == "clear":
            answered += pb.clear(now)
            cleared = True
        got = pb.advance(now) if kind != "clear" else []
        items += got
        answered += marks_of(got)
        played += audio_of(got)
        elapsed_ms = 0 if first_ms is None else now_ms - first_ms
        assert pb.played_bytes <= elapsed_ms * 8
        assert len(played) == pb.played_bytes or kind == "clear"
    final = pb.advance(now_ms / 1000 + 1e6)
    items += final
    # Marks: each answered exactly once, in the order they were sent.
    assert sorted(answered + marks_of(final), key=lambda m: int(m[1:])) == sent_marks
    assert answered + marks_of(final) == sent_marks or cleared
    # Audio: played in order and never overlapping itself.
    played += audio_of(final)
    if not cleared:
        assert played == queued
    end = -math.inf
    for item in items:
        if isinstance(item, PlayedAudio):
            assert item.started_at >= end - 1e-9
            end = item.started_at + len(item.data) / 8000


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 100), st.integers(1, 4000)), min_size=1, max_size=30))
def test_property_marks_echo_in_order_with_their_audio(chunks: list[tuple[int, int]]) -> None:
    pb = PlaybackBuffer()
    now = 0
    for i, (dt, size) in enumerate(chunks):
        now += dt
        pb.enqueue_audio(b"\x01" * size, now / 1000)
        pb.enqueue_mark(str(i), now / 1000)
    items = pb.advance(1e6)
    assert marks_of(items) == [str(i) for i in range(len(chunks))]
    reached = [i.at for i in items if isinstance(i, MarkReached)]
    assert reached == sorted(reached)


# -- TurnTimer -----------------------------------------------------------------------------


def feed(timer: TurnTimer, pattern: str, start: float = 0.0) -> list[str | None]:
    """One character per 20 ms frame: ``v`` voiced, ``.`` unvoiced."""
    return [timer.on_frame(c == "v", start + i * 0.02) for i, c in enumerate(pattern)]


def test_turn_latency_from_last_voiced_frame() -> None:
    timer = TurnTimer(hangover_frames=5)
    marks = feed(timer, "vvvv.......")
    assert marks[0] == "speech"
    assert marks[8] == "speech_end"  # 5 unvoiced frames after the last voiced one (t = 0.06)
    timer.on_agent_audio(0.56)
    timer.on_agent_audio(0.60)  # only the first counts
    assert timer.latencies_ms == [pytest.approx(500.0)]


def test_reply_before_hangover_and_pause_inside_utterance() -> None:
    timer = TurnTimer(hangover_frames=5)
    feed(timer, "vv..")  # last voiced at 0.02
    timer.on_agent_audio(0.07)  # arrives in a pause
    feed(timer, "v", 0.08)  # caller goes on: that reply does not count
    timer.on_agent_audio(0.1)  # after the last voiced frame, before the hangover ends
    assert timer.latencies_ms == []
    assert feed(timer, ".....", 0.1)[-1] == "speech_end"
    assert timer.latencies_ms == [pytest.approx(20.0)]


def test_agent_audio_without_caller_speech_is_not_a_turn() -> None:
    timer = TurnTimer()
    timer.on_agent_audio(0.1)
    assert feed(timer, "...") == [None, None, None]
    assert timer.latencies_ms == []
    assert not timer.in_utterance


def test_finish_counts_an_answered_utterance_still_in_hangover() -> None:
    timer = TurnTimer(hangover_frames=50)
    feed(timer, "vv...")
    timer.on_agent_audio(0.1)
    assert timer.latencies_ms == []
    timer.finish()
    assert timer.latencies_ms == [pytest.approx(80.0)]
    timer.finish()
    assert len(timer.latencies_ms) == 1
