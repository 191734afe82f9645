"""Join the load generator's and the fake engine's records of one run into its figures.

Two ways to know when a frame arrived, both giving ``(connection key, frame number, receive
time)`` per received frame, joined to the sender's own record of when it sent that frame:

* **stamps** (:mod:`bench.stamp`): the frame says who and which; only through μ-law passthrough.
* **markers** (:mod:`bench.marker`, :mod:`bench.align`): sync tones and sample counting; through
  any resampler. On a passthrough run both are computed and compared frame by frame
  (``marker_check``): the marker method is trusted on resampled paths because it gives the same
  receive time as the stamps wherever both exist.

Frames count when they were *sent* inside the window. Agent frames of an answer the user barged
in on that never reached the caller are ``dropped_on_barge_in`` (a bridge may drop what the
caller will not hear), not ``lost``. Pure apart from :func:`analyze`, which loads the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import align, marker, stats

__all__ = ["CLEAR_MAX_WAIT_US", "Frames", "analyze", "join", "marker_frames", "stamp_frames"]

CLEAR_MAX_WAIT_US = 2_000_000
UP_FRAME, UP_OFFSET = 480, 24000 * marker.TONE_OFFSET_MS // 1000  # engine side: 24 kHz units
DN_FRAME, DN_OFFSET = 160, 8000 * marker.TONE_OFFSET_MS // 1000  # caller side: 8 kHz μ-law

IntArray = npt.NDArray[np.int64]
Frames = tuple[IntArray, IntArray, IntArray]
"""(key, frame number, receive time µs) of every frame found at the receiver."""


def _groups(keys: npt.ArrayLike) -> dict[int, IntArray]:
    """Indices of each distinct key, in their original order."""
    k = np.asarray(keys, dtype=np.int64)
    order = np.argsort(k, kind="stable")
    uniq, starts = np.unique(k[order], return_index=True)
    parts = np.split(order, starts[1:])
    return {int(u): p for u, p in zip(uniq.tolist(), parts, strict=True)}


def _cat(parts: list[IntArray]) -> IntArray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def stamp_frames(lg: Any, eng: Any) -> dict[str, Frames]:
    """Frames found by their byte stamps: up keyed by call, down by engine connection."""
    return {
        "up": (eng["up_call"], eng["up_seq"], eng["up_recv_us"]),
        "down": (lg["dn_conn"], lg["dn_seq"], lg["dn_recv_us"]),
    }


def marker_frames(lg: Any, eng: Any) -> tuple[dict[str, Frames], dict[str, int]]:
    """Frames found by sync tones and counting (:mod:`bench.align`), and health counts."""
    conn_of = dict(zip(eng["map_call"].tolist(), eng["map_conn"].tolist(), strict=True))
    call_of = {c: k for k, c in conn_of.items()}
    health = dict.fromkeys(
        ("up_syncs_matched", "up_onsets_unmatched", "up_resyncs", "down_answers_matched"), 0
    )
    health.update(down_onsets_unmatched=0, up_max_sync_lag_ms=0.0, down_max_sync_lag_ms=0.0)
    up_keys, up_seq, up_us = [], [], []
    sent = _groups(lg["up_call"])
    chunks, onsets = _groups(eng["upc_conn"]), _groups(eng["upo_conn"])
    for call, idx in sent.items():
        conn = conn_of.get(call)
        if conn is None or conn not in chunks:
            continue
        c, o = chunks[conn], onsets.get(conn, np.zeros(0, dtype=np.int64))
        rx = align.Received(
            eng["upc_end"][c], eng["upc_us"][c], eng["upo_pos"][o], eng["upo_us"][o]
        )
        got = align.up_frames(
            lg["up_seq"][idx],
            lg["up_sent_us"][idx],
            rx,
            frame=UP_FRAME,
            offset=UP_OFFSET,
            sync_every=marker.SYNC_EVERY,
        )
        health["up_syncs_matched"] += got.matched
        health["up_onsets_unmatched"] += got.unmatched
        health["up_resyncs"] += got.resyncs
        health["up_max_sync_lag_ms"] = max(health["up_max_sync_lag_ms"], got.max_lag_us / 1000)
        up_keys.append(np.full(got.seq.size, call, dtype=np.int64))
        up_seq.append(got.seq)
        up_us.append(got.recv_us)
    dn_keys, dn_seq, dn_us = [], [], []
    answers = _groups(eng["ans_conn"])
    chunks, onsets = _groups(lg["dnc_call"]), _groups(lg["dno_call"])
    for conn, a in answers.items():
        call = call_of.get(conn)
        if call is None or call not in chunks:
            continue
        c, o = chunks[call], onsets.get(call, np.zeros(0, dtype=np.int64))
        rx = align.Received(lg["dnc_end"][c], lg["dnc_us"][c], lg["dno_pos"][o], lg["dno_us"][o])
        spoken = align.Answers(eng["ans_seq0"][a], eng["ans_frames"][a], eng["ans_us"][a])
        got = align.down_frames(spoken, rx, frame=DN_FRAME, offset=DN_OFFSET)
        health["down_answers_matched"] += got.matched
        health["down_onsets_unmatched"] += got.unmatched
        health["down_max_sync_lag_ms"] = max(health["down_max_sync_lag_ms"], got.max_lag_us / 1000)
        dn_keys.append(np.full(got.seq.size, conn, dtype=np.int64))
        dn_seq.append(got.seq)
        dn_us.append(got.recv_us)
    frames = {
        "up": (_cat(up_keys), _cat(up_seq), _cat(up_us)),
        "down": (_cat(dn_keys), _cat(dn_seq), _cat(dn_us)),
    }
    return frames, health


def join(
    sent_key: npt.ArrayLike, sent_seq: npt.ArrayLike, sent_us: npt.ArrayLike, got: Frames
) -> tuple[IntArray, IntArray]:
    """For every sent frame: its latency in µs (−1 if never received) and its packed key."""
    keys = stats.pack_keys(sent_key, sent_seq)
    got_keys = stats.pack_keys(got[0], got[1])
    order = np.argsort(got_keys, kind="stable")
    got_keys, got_us = got_keys[order], np.asarray(got[2], dtype=np.int64)[order]
    if not got_keys.size:
        return np.full(keys.shape, -1, dtype=np.int64), keys
    i = np.clip(np.searchsorted(got_keys, keys), 0, got_keys.size - 1)
    found = got_keys[i] == keys
    latency = np.where(found, got_us[i] - np.asarray(sent_us, dtype=np.int64), -1)
    return np.asarray(latency, dtype=np.int64), keys


def barged_frames(eng: Any) -> npt.NDArray[np.bool_]:
    """Per sent agent frame: does it belong to an answer the user barged in on?"""
    answer_keys = stats.pack_keys(eng["ans_conn"], eng["ans_seq0"])
    order = np.argsort(answer_keys)
    frame_keys = stats.pack_keys(eng["dn_conn"], eng["dn_seq"])
    i = np.searchsorted(answer_keys[order], frame_keys, side="right") - 1
    barged = np.asarray(eng["ans_barged"], dtype=np.int64)[order]
    ok = i >= 0
    out = np.zeros(frame_keys.shape, dtype=bool)
    out[ok] = barged[i[ok]] > 0
    return out


def figures(lg: Any, eng: Any, got: dict[str, Frames], w0: int, w1: int) -> dict[str, Any]:
    """Latency, loss and answer-onset latency from one method's frames."""
    up_win = stats.in_window(lg["up_sent_us"], w0, w1)
    up_lat, _ = join(lg["up_call"], lg["up_seq"], lg["up_sent_us"], got["up"])
    up_lat = up_lat[up_win]
    dn_win = stats.in_window(eng["dn_sent_us"], w0, w1)
    dn_lat, _ = join(eng["dn_conn"], eng["dn_seq"], eng["dn_sent_us"], got["down"])
    barged = barged_frames(eng)
    first = np.isin(
        stats.pack_keys(eng["dn_conn"], eng["dn_seq"]),
        stats.pack_keys(eng["ans_conn"], eng["ans_seq0"]),
    )
    missing = dn_lat < 0
    return {
        "up": {
            "latency_ms": stats.percentiles(up_lat[up_lat >= 0]),
            "sent": int(up_lat.size),
            "lost": int(np.count_nonzero(up_lat < 0)),
        },
        "down": {
            "latency_ms": stats.percentiles(dn_lat[dn_win & ~missing]),
            "answer_onset_ms": stats.percentiles(dn_lat[dn_win & first & ~missing]),
            "sent": int(np.count_nonzero(dn_win)),
            "lost": int(np.count_nonzero(dn_win & missing & ~barged)),
            "dropped_on_barge_in": int(np.count_nonzero(dn_win & missing & barged)),
        },
    }


def compare(
    lg: Any, eng: Any, a: dict[str, Frames], b: dict[str, Frames], window: tuple[int, int]
) -> dict[str, Any]:
    """Frame-by-frame agreement of two methods' receive times, over frames both found."""
    out: dict[str, Any] = {}
    sides = {
        "up": (lg["up_call"], lg["up_seq"], lg["up_sent_us"]),
        "down": (eng["dn_conn"], eng["dn_seq"], eng["dn_sent_us"]),
    }
    for way, (key, seq, sent) in sides.items():
        win = stats.in_window(sent, *window)
        lat_a, _ = join(key, seq, sent, a[way])
        lat_b, _ = join(key, seq, sent, b[way])
        both = win & (lat_a >= 0) & (lat_b >= 0)
        diff = (lat_b - lat_a)[both]
        out[way] = {
            "frames_compared": int(both.sum()),
            "only_stamps": int((win & (lat_a >= 0) & (lat_b < 0)).sum()),
            "only_markers": int((win & (lat_a < 0) & (lat_b >= 0)).sum()),
            "identical_pct": round(100 * float(np.mean(diff == 0)), 3) if diff.size else None,
            "max_abs_diff_ms": round(float(np.abs(diff).max()) / 1000, 3) if diff.size else None,
        }
    return out


def analyze(lg_out: Path, eng_report: Path, *, method: str) -> dict[str, Any]:
    """All figures of one run; ``method`` (``stamps``/``markers``) picks the latency source."""
    lg, eng = np.load(lg_out), np.load(eng_report)
    lg_sum = json.loads(lg_out.with_suffix(".json").read_text())
    eng_sum = json.loads(eng_report.with_suffix(".json").read_text())
    w0, w1 = int(lg_sum["window_start_us"]), int(lg_sum["window_end_us"])
    by_stamps = stamp_frames(lg, eng)
    by_markers, health = marker_frames(lg, eng)
    result = figures(lg, eng, by_stamps if method == "stamps" else by_markers, w0, w1)
    result["method"] = method
    result["marker_health"] = health
    if method == "stamps":
        result["marker_check"] = compare(lg, eng, by_stamps, by_markers, (w0, w1))
    conn_of = dict(zip(eng["map_call"].tolist(), eng["map_conn"].tolist(), strict=True))
    barge = stats.in_window(eng["barge_us"], w0, w1)
    clear_conn = np.asarray([conn_of.get(c, -1) for c in lg["clear_call"].tolist()], np.int64)
    clears, missed = stats.pair_clears(
        eng["barge_conn"][barge],
        eng["barge_us"][barge],
        clear_conn,
        lg["clear_us"],
        CLEAR_MAX_WAIT_US,
    )
    first_audio = [x for x in lg_sum["first_audio_ms"] if x is not None]
    up_sent = stats.in_window(lg["up_sent_us"], w0, w1)
    result.update(
        {
            "clear_ms": stats.percentiles(clears),
            "clear_missed": missed,
            "first_audio_ms": stats.percentiles(np.asarray(first_audio) * 1000.0),
            "first_audio_missing": len(lg_sum["first_audio_ms"]) - len(first_audio),
            "loadgen": {
                "send_late_ms": stats.percentiles(
                    lg["up_sent_us"][up_sent] - lg["up_sched_us"][up_sent]
                ),
                **{k: lg_sum.get(k) for k in LOADGEN_KEYS},
            },
            "engine": {k: eng_sum.get(k) for k in ENGINE_KEYS},
        }
    )
    return result


LOADGEN_KEYS = (
    "calls_connected",
    "failures",
    "failure_samples",
    "early_closes",
    "early_close_samples",
    "frames_sent",
    "frames_received",
    "marks_echoed",
    "clears",
    "unstamped_frames",
    "odd_payloads",
    "protocol_errors",
    "messages_received",
    "sync_onsets_received",
)
ENGINE_KEYS = (
    "connections",
    "frames_received",
    "appends_received",
    "sync_onsets_received",
    "frames_sent",
    "answers",
    "barge_ins",
    "unstamped_frames",
    "odd_appends",
    "errors_sent",
    "formats_in_out",
    "client_events",
    "client_event_samples",
)
