"""Marker records → per-frame arrivals, on hand-made streams with known answers."""

from __future__ import annotations

import numpy as np

from bench import align

FRAME, OFFSET = 480, 48
T0 = 1_000_000


def up_stream(
    frames: int, *, dropped: set[int], lag_us: int = 300, chunk: int = 1
) -> tuple[np.ndarray, np.ndarray, align.Received]:
    """A call's frames 0..frames-1 sent every 20 ms; the receiver gets all but ``dropped``,
    ``chunk`` frames per append, each append ``lag_us`` after its last frame was sent."""
    seq = np.arange(frames)
    sent = T0 + seq * 20_000
    kept = [k for k in range(frames) if k not in dropped]
    ends, times, onsets, onset_us = [], [], [], []
    for i in range(0, len(kept), chunk):
        group = kept[i : i + chunk]
        start = i * FRAME
        for j, k in enumerate(group):
            if k % 50 == 0 and k > 0:
                onsets.append(start + j * FRAME + OFFSET)
                onset_us.append(sent[group[-1]] + lag_us)
        ends.append(start + len(group) * FRAME)
        times.append(sent[group[-1]] + lag_us)
    return seq, sent, align.Received(ends, times, onsets, onset_us)


def up(seq: np.ndarray, sent: np.ndarray, rx: align.Received) -> align.Aligned:
    return align.up_frames(seq, sent, rx, frame=FRAME, offset=OFFSET, sync_every=50)


def test_arrivals_and_match_in_order() -> None:
    ends, times = [480, 960, 2400], [10, 20, 30]
    assert align.arrivals(ends, times, [0, 479, 480, 959, 2399, 2400, -1]).tolist() == [
        10,
        10,
        20,
        20,
        30,
        -1,
        -1,
    ]
    sent = [100, 200, 300]
    assert align.match_in_order([50, 100, 150, 5000, 6000], sent).tolist() == [-1, 0, -1, 1, 2]
    assert align.match_in_order([400, 400, 400, 400], sent).tolist() == [0, 1, 2, -1]


def test_every_frame_found_when_nothing_is_lost() -> None:
    seq, sent, rx = up_stream(200, dropped=set())
    got = up(seq, sent, rx)
    assert got.seq.tolist() == list(range(200))
    assert (got.recv_us - sent == 300).all()
    assert (got.matched, got.unmatched, got.resyncs, got.max_lag_us) == (3, 0, 0, 300)


def test_frames_lost_while_the_call_set_up_shift_nothing() -> None:
    seq, sent, rx = up_stream(200, dropped={0, 1, 2, 3, 4})
    got = up(seq, sent, rx)
    assert got.seq.tolist() == list(range(5, 200))
    assert (got.recv_us - sent[5:] == 300).all()
    assert got.resyncs == 0


def test_batched_appends_are_timed_by_the_append_holding_the_frame() -> None:
    seq, sent, rx = up_stream(200, dropped=set(), chunk=7)
    got = up(seq, sent, rx)
    assert got.seq.tolist() == list(range(200))
    expected = [sent[min(k // 7 * 7 + 6, 199)] + 300 for k in range(200)]
    assert got.recv_us.tolist() == expected


def test_a_frame_lost_mid_call_shows_as_a_resync() -> None:
    seq, sent, rx = up_stream(200, dropped={120})
    got = up(seq, sent, rx)
    assert got.resyncs == 1
    # Counting resumes exactly at the next sync: frames from 150 on are timed right again.
    right = got.seq >= 150
    assert (got.recv_us[right] - sent[got.seq[right]] == 300).all()


def test_an_onset_received_before_its_sync_was_sent_is_unmatched() -> None:
    seq, sent, rx = up_stream(120, dropped=set())
    onset_us = np.asarray(rx.onset_us)
    early = align.Received(
        rx.chunk_end, rx.chunk_us, rx.onset_pos, [onset_us[0] - 10**6, onset_us[1]]
    )
    got = up(seq, sent, early)
    assert (got.matched, got.unmatched) == (1, 1)
    assert got.seq.size == 120


def test_latency_longer_than_the_sync_spacing_is_measured_not_folded() -> None:
    """A target lagging 1.5 s (more than the 1 s between syncs) still gets its 1.5 s."""
    seq, sent, rx = up_stream(300, dropped=set(), lag_us=1_500_000)
    got = up(seq, sent, rx)
    assert (got.recv_us - sent == 1_500_000).all()
    assert got.max_lag_us == 1_500_000


def down(answers: align.Answers, rx: align.Received) -> align.Aligned:
    return align.down_frames(answers, rx, frame=160, offset=16)


def test_answers_counted_from_their_sync_and_cut_where_the_next_begins() -> None:
    """Two answers of 10 frames; the first was interrupted after 4 frames reached the caller."""
    answers = align.Answers(seq0=[0, 10], frames=[10, 10], sent_us=[T0, T0 + 4_000_000])
    # caller stream: 4 frames of answer 0, then all of answer 1; one chunk per frame
    ends = [160 * (i + 1) for i in range(14)]
    times = [T0 + 1000 * i for i in range(4)] + [T0 + 4_000_000 + 500 + 1000 * i for i in range(10)]
    rx = align.Received(ends, times, [16, 4 * 160 + 16], [times[0], times[4]])
    got = down(answers, rx)
    assert got.seq.tolist() == [0, 1, 2, 3, *range(10, 20)]
    assert got.recv_us.tolist() == times
    assert (got.matched, got.unmatched) == (2, 0)


def test_an_answer_without_its_sync_is_not_received() -> None:
    answers = align.Answers(seq0=[0, 10], frames=[10, 10], sent_us=[T0, T0 + 4_000_000])
    ends = [160 * (i + 1) for i in range(10)]
    times = [T0 + 1000 * i for i in range(10)]
    got = down(answers, align.Received(ends, times, [16], [times[0]]))
    assert got.seq.tolist() == list(range(10))
    nothing = down(answers, align.Received(ends, times, [], []))
    assert nothing.seq.size == 0
    assert nothing.matched == 0
