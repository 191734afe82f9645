"""Turn marker records into per-frame arrival times: the same arrays byte stamps give.

See :mod:`bench.marker` for the signal. Both directions use the same two steps, per connection:

1. **Match** every onset the receiver saw to the sync frame it is, without assuming any bound on
   latency (an overloaded target may lag by seconds, and guessing by time would then pick a
   later sync and *under*-state the latency):

   * up, syncs are every ``sync_every``-th frame of a call. Frames can go missing (a bridge that
     drops caller audio while it sets up) but are never invented, so an onset at stream position
     *p* is the first sync at or after frame ``(p − offset) / frame − slack`` (``slack`` absorbs
     a resampler's delay, < 18 ms); that holds while fewer than ``sync_every`` frames are lost
     between two syncs. It must also have been sent before the onset was received (causality),
     else the onset stays unmatched;
   * down, each agent answer begins with a sync frame and answers are played in order: the
     onsets, in stream order, take the answers in send order, each the next one not yet taken
     that was sent before the onset was received (an answer whose first frame never arrived
     makes the next onset take it: that over-states latency, it never hides any).

2. **Count**: frame *k* after a matched sync *k₀* at stream position *p* starts at
   ``p − offset + (k − k₀) × frame``; it arrived with the chunk that holds that position.

Up, each frame uses the last sync at or before it (the first one for frames before any). A sync
that lands more than half a frame away from where the previous one predicts it is a **resync**:
frames were lost or added in between (a health figure, 0 in a good run). Down, an answer's frames
count from its sync and end where the next answer's audio begins (or the stream ends): a bridge
that drops the rest of an interrupted answer (Pipecat does, callbridge leaves it to Twilio's
``clear``) shows those frames as not received. ``max_lag_us`` of each match is reported.

Pure: numpy arrays in, arrays out; no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Aligned", "Answers", "Received", "arrivals", "down_frames", "up_frames"]

SLACK_FRAMES = 0.9

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Aligned:
    """Frames found at the receiver: their numbers and arrival times, plus health counts."""

    seq: IntArray
    recv_us: IntArray
    matched: int
    unmatched: int
    resyncs: int = 0
    max_lag_us: int = 0
    """The longest time between a matched sync's send and its onset's receipt."""


def _i64(values: npt.ArrayLike) -> IntArray:
    return np.asarray(values, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Received:
    """One connection's stream at the receiver, in its own samples, in receive order.

    ``chunk_end``: cumulative sample count after each chunk; ``chunk_us``: its receive time;
    ``onset_pos``/``onset_us``: each sync onset's stream position and its chunk's receive time.
    """

    chunk_end: npt.ArrayLike
    chunk_us: npt.ArrayLike
    onset_pos: npt.ArrayLike
    onset_us: npt.ArrayLike


@dataclass(frozen=True, slots=True)
class Answers:
    """One connection's agent answers: first frame number, frames sent, first delta's send time."""

    seq0: npt.ArrayLike
    frames: npt.ArrayLike
    sent_us: npt.ArrayLike


def arrivals(
    chunk_end: npt.ArrayLike, chunk_us: npt.ArrayLike, positions: npt.ArrayLike
) -> IntArray:
    """Receive time of the chunk holding each stream position; −1 where none does (yet).

    ``chunk_end`` is the cumulative sample count after each chunk, in receive order.
    """
    ends, times, pos = _i64(chunk_end), _i64(chunk_us), _i64(positions)
    i = np.searchsorted(ends, pos, side="right")
    out = np.full(pos.shape, -1, dtype=np.int64)
    ok = (pos >= 0) & (i < ends.size)
    out[ok] = times[i[ok]]
    return out


def _first_per_target(targets: IntArray) -> IntArray:
    """Mask keeping the first occurrence of each matched target (≥ 0)."""
    keep = np.zeros(targets.shape, dtype=bool)
    seen: set[int] = set()
    for n, t in enumerate(targets.tolist()):
        if t >= 0 and t not in seen:
            seen.add(t)
            keep[n] = True
    return keep


def up_frames(
    seq: npt.ArrayLike,
    sent_us: npt.ArrayLike,
    rx: Received,
    *,
    frame: int,
    offset: int,
    sync_every: int,
) -> Aligned:
    """Caller → engine for one call: which of its frames ``seq`` reached the engine, and when.

    ``seq``/``sent_us``: every frame the call sent; frames with ``seq % sync_every == 0`` and
    ``seq > 0`` are syncs. ``rx`` is the engine's stream; ``frame`` samples per 20 ms and the
    tone's ``offset`` in the same unit.
    """
    seqs, sent = _i64(seq), _i64(sent_us)
    is_sync = (seqs % sync_every == 0) & (seqs > 0)
    order = np.argsort(seqs[is_sync], kind="stable")
    sync_seq, sync_us = seqs[is_sync][order], sent[is_sync][order]
    pos, t = _i64(rx.onset_pos), _i64(rx.onset_us)
    lowest = (pos - offset) / frame - SLACK_FRAMES
    hit = np.searchsorted(sync_seq, lowest, side="left")
    ok = hit < sync_seq.size
    ok[ok] &= sync_us[hit[ok]] <= t[ok]
    keep = _first_per_target(np.where(ok, hit, -1))
    matched = int(np.count_nonzero(keep))
    empty = np.zeros(0, dtype=np.int64)
    if not matched:
        return Aligned(empty, empty, 0, int(pos.size))
    lag = int((t[keep] - sync_us[hit[keep]]).max())
    anchor_k = sync_seq[hit[keep]]
    base = pos[keep] - offset - anchor_k * frame  # stream position of frame 0 under each anchor
    order = np.argsort(anchor_k, kind="stable")
    anchor_k, base = anchor_k[order], base[order]
    resyncs = int(np.count_nonzero(np.abs(np.diff(base)) > frame // 2))
    which = np.clip(np.searchsorted(anchor_k, seqs, side="right") - 1, 0, None)
    recv = arrivals(rx.chunk_end, rx.chunk_us, base[which] + seqs * frame)
    got = recv >= 0
    return Aligned(seqs[got], recv[got], matched, int(pos.size) - matched, resyncs, lag)


def match_in_order(onset_us: npt.ArrayLike, sent_us: npt.ArrayLike) -> IntArray:
    """Onsets (in stream order) take answers (in send order): each the next answer not taken
    yet that was sent at or before it; −1 when none is left."""
    sent = _i64(sent_us)
    out = []
    nxt = 0
    for t in _i64(onset_us).tolist():
        if nxt < sent.size and sent[nxt] <= t:
            out.append(nxt)
            nxt += 1
        else:
            out.append(-1)
    return np.asarray(out, dtype=np.int64)


def down_frames(answers: Answers, rx: Received, *, frame: int, offset: int) -> Aligned:
    """Engine → caller for one connection: which answer frames reached the caller, and when.

    Answer *a* is frames ``seq0[a] … seq0[a] + frames[a] − 1`` of the connection, its first
    delta sent at ``sent_us[a]`` (ascending). A frame counts as received when its first half
    arrived before the next answer's audio began.
    """
    seq0, count, start = _i64(answers.seq0), _i64(answers.frames), _i64(answers.sent_us)
    pos = _i64(rx.onset_pos)
    order = np.argsort(pos, kind="stable")
    pos, t = pos[order], _i64(rx.onset_us)[order]
    hit = match_in_order(t, start)
    keep = hit >= 0
    matched = int(np.count_nonzero(keep))
    lag = int((t[keep] - start[hit[keep]]).max()) if matched else 0
    ends = _i64(rx.chunk_end)
    total = int(ends[-1]) if ends.size else 0
    which, begins = hit[keep], pos[keep] - offset
    limits = np.append(begins[1:], total) if begins.size else begins
    seqs: list[IntArray] = []
    where: list[IntArray] = []
    for a, begin, limit in zip(which.tolist(), begins.tolist(), limits.tolist(), strict=True):
        j = np.arange(count[a], dtype=np.int64)
        first = begin + j * frame
        whole = first + frame // 2 <= limit
        seqs.append(seq0[a] + j[whole])
        where.append(first[whole])
    if not seqs:
        empty = np.zeros(0, dtype=np.int64)
        return Aligned(empty, empty, matched, int(pos.size) - matched)
    all_seq, all_pos = np.concatenate(seqs), np.concatenate(where)
    recv = arrivals(ends, rx.chunk_us, all_pos)
    got = recv >= 0
    return Aligned(all_seq[got], recv[got], matched, int(pos.size) - matched, 0, lag)
