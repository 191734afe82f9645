"""Both ends' records of a tiny hand-made run → the same figures by stamps and by markers."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench import analyze

T0 = 10_000_000
UP_LAG, DN_LAG = 300, 500


def records() -> tuple[dict[str, Any], dict[str, Any]]:
    """One call (index 4) on engine connection 1: 120 caller frames, each received 300 µs after
    it was sent; two answers of 10 frames, the second barged in on and cut after 4 frames."""
    a = np.asarray
    seq = np.arange(120)
    sent = T0 + seq * 20_000
    syncs = seq[(seq % 50 == 0) & (seq > 0)]
    ans_us = a([T0, T0 + 1_000_000])
    dn_seq = np.arange(20)
    dn_sent = np.concatenate([ans_us[0] + np.arange(10) * 5000, ans_us[1] + np.arange(10) * 5000])
    got = np.concatenate([dn_seq[:10], dn_seq[10:14]])
    got_us = dn_sent[got] + DN_LAG
    lg = {
        "up_call": np.full(120, 4),
        "up_seq": seq,
        "up_sent_us": sent,
        "up_sched_us": sent,
        "dn_conn": np.full(got.size, 1),
        "dn_seq": got,
        "dn_recv_us": got_us,
        "dnc_call": np.full(got.size, 4),
        "dnc_end": (np.arange(got.size) + 1) * 160,
        "dnc_us": got_us,
        "dno_call": a([4, 4]),
        "dno_pos": a([16, 10 * 160 + 16]),
        "dno_us": a([got_us[0], got_us[10]]),
        "clear_call": a([4]),
        "clear_us": a([T0 + 1_400_000]),
    }
    eng = {
        "up_call": np.full(120, 4),
        "up_seq": seq,
        "up_recv_us": sent + UP_LAG,
        "upc_conn": np.full(120, 1),
        "upc_end": (seq + 1) * 480,
        "upc_us": sent + UP_LAG,
        "upo_conn": np.full(syncs.size, 1),
        "upo_pos": syncs * 480 + 48,
        "upo_us": sent[syncs] + UP_LAG,
        "dn_conn": np.full(20, 1),
        "dn_seq": dn_seq,
        "dn_sent_us": dn_sent,
        "ans_conn": a([1, 1]),
        "ans_seq0": a([0, 10]),
        "ans_frames": a([10, 10]),
        "ans_us": ans_us,
        "ans_barged": a([0, 1]),
        "barge_conn": a([1]),
        "barge_us": a([T0 + 1_399_000]),
        "map_conn": a([1]),
        "map_call": a([4]),
    }
    return lg, eng


def test_stamps_and_markers_agree_frame_by_frame() -> None:
    lg, eng = records()
    window = (T0, T0 + 10_000_000)
    by_stamps = analyze.stamp_frames(lg, eng)
    by_markers, health = analyze.marker_frames(lg, eng)
    assert health["up_syncs_matched"] == 2
    assert health["down_answers_matched"] == 2
    check = analyze.compare(lg, eng, by_stamps, by_markers, window)
    assert check["up"] == {
        "frames_compared": 120,
        "only_stamps": 0,
        "only_markers": 0,
        "identical_pct": 100.0,
        "max_abs_diff_ms": 0.0,
    }
    assert check["down"]["frames_compared"] == 14
    assert check["down"]["identical_pct"] == 100.0
    for got in (by_stamps, by_markers):
        figures = analyze.figures(lg, eng, got, *window)
        assert figures["up"]["latency_ms"]["p50"] == UP_LAG / 1000
        assert (figures["up"]["sent"], figures["up"]["lost"]) == (120, 0)
        down = figures["down"]
        assert down["latency_ms"]["max"] == DN_LAG / 1000
        assert down["answer_onset_ms"]["count"] == 2
        assert (down["sent"], down["lost"], down["dropped_on_barge_in"]) == (20, 0, 6)


def test_a_lost_frame_of_an_answer_nobody_interrupted_is_lost() -> None:
    lg, eng = records()
    keep = lg["dn_seq"] != 3
    lost_one = {**lg, "dn_conn": lg["dn_conn"][keep], "dn_seq": lg["dn_seq"][keep]}
    lost_one["dn_recv_us"] = lg["dn_recv_us"][keep]
    figures = analyze.figures(lost_one, eng, analyze.stamp_frames(lost_one, eng), T0, T0 + 10**7)
    assert (figures["down"]["lost"], figures["down"]["dropped_on_barge_in"]) == (1, 6)


def test_join_and_barged_frames() -> None:
    lg, eng = records()
    latency, keys = analyze.join(
        [4, 4, 5], [0, 119, 0], [T0, T0, T0], analyze.stamp_frames(lg, eng)["up"]
    )
    assert latency.tolist() == [UP_LAG, 119 * 20_000 + UP_LAG, -1]
    assert keys.size == 3
    assert analyze.barged_frames(eng).tolist() == [False] * 10 + [True] * 10
