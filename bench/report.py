"""The headline figures of each run, the tables on stdout, and the Pipecat / callbridge ratios.

Pure: dicts in, dicts and text out. ``python -m bench.report bench/results/<time>.json`` prints
the tables of a saved run again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench import stats

__all__ = ["point_summary", "print_ratios", "print_table", "ratios", "stop_reason"]

SWEEP_P99_LIMIT_MS = 5.0
SATURATED_PCT = 95.0
"""A target using this much of its CPU(s) is saturated: its CPU per call-second is capped by the
core, so it only bounds the true cost from below, and its latency is mostly queueing."""
RATIO_FLOOR = 0.05
"""A ratio whose denominator is below this (ms, KiB, …) is not computed: noise over noise."""


def _per_call_s(counts: dict[str, int] | None, frames_sent: int | None) -> dict[str, float]:
    """Message counts per call-second (a call sends one frame per 20 ms)."""
    call_s = (frames_sent or 0) * 0.02
    if not counts or call_s <= 0:
        return {}
    return {kind: round(n / call_s, 2) for kind, n in sorted(counts.items())}


def point_summary(
    run: dict[str, Any], base: dict[str, Any] | None, quiet_limit: float
) -> dict[str, Any]:
    """The headline figures of one run at one N (``base``: the baseline at the same N)."""
    out: dict[str, Any] = {"n": run["n"], "target": run["target"], "method": run["method"]}
    for way in ("up", "down"):
        lat = run[way]["latency_ms"]
        out[way] = {
            "through_ms": {k: lat[k] for k in ("p50", "p99", "p999", "max")},
            "added_ms": stats.added(lat, base[way]["latency_ms"]) if base else None,
            "baseline_ms": {k: base[way]["latency_ms"][k] for k in ("p50", "p99", "p999")}
            if base
            else None,
            "lost": run[way]["lost"],
            "sent": run[way]["sent"],
        }
    onset = run["down"]["answer_onset_ms"]
    out["down"]["answer_onset_ms"] = {k: onset[k] for k in ("count", "p50", "p99")}
    out["down"]["answer_onset_added_ms"] = (
        stats.added(onset, base["down"]["answer_onset_ms"]) if base else None
    )
    out["down"]["dropped_on_barge_in"] = run["down"]["dropped_on_barge_in"]
    out["bridge_cpu_s_per_call_s"] = run["bridge"]["cpu_s_per_call_s"]
    out["bridge_core_pct"] = run["cpu"]["bridge"]["core_pct"]
    out["rss_per_call_kib"] = run["bridge"]["rss_per_call_kib"]
    out["first_audio_p50_ms"] = run["first_audio_ms"]["p50"]
    out["clear_ms"] = {k: run["clear_ms"][k] for k in ("count", "p50", "p99")}
    out["clear_missed"] = run["clear_missed"]
    out["loadgen_core_pct"] = run["cpu"]["loadgen"]["core_pct"]
    out["engine_core_pct"] = run["cpu"]["engine"]["core_pct"]
    out["others_core_pct"] = run["cpu"]["others"]["core_pct"]
    others = [p["cpu"]["others"]["core_pct"] for p in (run, base) if p is not None]
    out["noisy"] = max(others) > quiet_limit
    out["loadgen_send_late_p99_ms"] = run["loadgen"]["send_late_ms"]["p99"]
    out["failures"] = run["loadgen"]["failures"] + run["loadgen"]["early_closes"]
    frames = run["loadgen"].get("frames_sent")
    out["twilio_msgs_per_call_s"] = _per_call_s(run["loadgen"].get("messages_received"), frames)
    out["engine_events_per_call_s"] = _per_call_s(run["engine"].get("client_events"), frames)
    if "marker_check" in run:
        out["marker_check"] = {
            way: {k: run["marker_check"][way][k] for k in ("frames_compared", "identical_pct")}
            for way in ("up", "down")
        }
    return out


def fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def saturated(row: dict[str, Any], workers: int = 1) -> bool:
    return bool(row["bridge_core_pct"] >= SATURATED_PCT * workers)


def print_table(rows: list[dict[str, Any]], title: str, workers: int = 1) -> None:
    """One line per N: added latency each way, loss, cost, and what else used the cores."""
    head = (
        f"{'N':>6} | {'up added p50':>12} {'p99':>6} {'p999':>6} | {'down added p50':>14} "
        f"{'p99':>7} {'p999':>7} | {'onset p50':>9} | {'lost up/dn':>10} {'barge':>5} | "
        f"{'CPU ms/call-s':>13} | {'KiB/call':>8} | {'1st audio':>9} | {'clear p50':>9} "
        f"{'p99':>6} | {'gen late p99':>12} | {'core% sut/eng/gen/other':>23}"
    )
    print(f"\n{title}")
    print(head)
    print("-" * len(head))
    for r in rows:
        up = r["up"]["added_ms"] or r["up"]["through_ms"]
        dn = r["down"]["added_ms"] or r["down"]["through_ms"]
        onset = r["down"]["answer_onset_added_ms"] or r["down"]["answer_onset_ms"]
        cores = "/".join(
            f"{r[k]:.0f}"
            for k in ("bridge_core_pct", "engine_core_pct", "loadgen_core_pct", "others_core_pct")
        )
        lost = f"{r['up']['lost']}/{r['down']['lost']}"
        n = f"{r['n']}{'*' if saturated(r, workers) else ''}{'!' if r.get('noisy') else ''}"
        print(
            f"{n:>6} | {fmt(up['p50']):>12} {fmt(up['p99']):>6} {fmt(up['p999']):>6} | "
            f"{fmt(dn['p50']):>14} {fmt(dn['p99']):>7} {fmt(dn['p999']):>7} | "
            f"{fmt(onset['p50']):>9} | {lost:>10} {r['down']['dropped_on_barge_in']:>5} | "
            f"{1000 * r['bridge_cpu_s_per_call_s']:>13.2f} | {r['rss_per_call_kib']:>8.0f} | "
            f"{fmt(r['first_audio_p50_ms'], '.1f'):>9} | {fmt(r['clear_ms']['p50']):>9} "
            f"{fmt(r['clear_ms']['p99']):>6} | {fmt(r['loadgen_send_late_p99_ms']):>12} | "
            f"{cores:>23}"
        )


TABLE_NOTE = (
    "latency in ms: added = percentile through the target − baseline percentile (same load, no "
    "bridge);\nonset = added latency of the first frame of each agent answer; lost = frames sent "
    "in the window never received\n(barge = agent frames of interrupted answers the target "
    "dropped: not lost, the caller would not hear them);\nclear = engine speech_started sent → "
    "Twilio clear received; 1st audio = start sent → first agent media (p50);\ngen late = how "
    "late the load generator sent its own frames; sut = the system under test;\n* = the sut "
    f"used ≥ {SATURATED_PCT:.0f} % of its CPU: saturated, its CPU per call-second is capped "
    "(a lower bound) and its latency is queueing;\n! = other processes used the cores during "
    "the run "
    "(figures unreliable)."
)


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or abs(den) < RATIO_FLOOR:
        return None
    return round(num / den, 2)


def _pair(peer: float | None, ours: float | None) -> dict[str, float | None]:
    return {"callbridge": ours, "pipecat": peer, "ratio": _ratio(peer, ours)}


RATIO_METRICS = (
    ("up added p50 ms", lambda r: (r["up"]["added_ms"] or {}).get("p50")),
    ("up added p99 ms", lambda r: (r["up"]["added_ms"] or {}).get("p99")),
    ("down added p50 ms", lambda r: (r["down"]["added_ms"] or {}).get("p50")),
    ("down added p99 ms", lambda r: (r["down"]["added_ms"] or {}).get("p99")),
    (
        "down answer onset added p50 ms",
        lambda r: (r["down"]["answer_onset_added_ms"] or {}).get("p50"),
    ),
    ("up through p50 ms", lambda r: r["up"]["through_ms"]["p50"]),
    ("up through p99 ms", lambda r: r["up"]["through_ms"]["p99"]),
    ("down through p50 ms", lambda r: r["down"]["through_ms"]["p50"]),
    ("down through p99 ms", lambda r: r["down"]["through_ms"]["p99"]),
    ("CPU ms per call-s", lambda r: round(1000 * r["bridge_cpu_s_per_call_s"], 3)),
    ("RSS KiB per call", lambda r: r["rss_per_call_kib"]),
    ("first audio p50 ms", lambda r: r["first_audio_p50_ms"]),
    ("clear p50 ms", lambda r: r["clear_ms"]["p50"]),
    ("clear p99 ms", lambda r: r["clear_ms"]["p99"]),
    ("frames lost (up+down)", lambda r: r["up"]["lost"] + r["down"]["lost"]),
)


def ratios(ours: list[dict[str, Any]], peer: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per N run on both: each metric for callbridge and Pipecat and their ratio (Pipecat / us)."""
    by_n = {r["n"]: r for r in ours}
    out = []
    for p in peer:
        r = by_n.get(p["n"])
        if r is None:
            continue
        pairs = {name: _pair(get(p), get(r)) for name, get in RATIO_METRICS}
        out.append({"n": p["n"], "pipecat_saturated": saturated(p), **pairs})
    return out


def print_ratios(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print(
        "\nratios pipecat / callbridge (values: callbridge → pipecat; - = denominator ~0; "
        "N* = pipecat saturated its core there)"
    )
    names = [name for name, _ in RATIO_METRICS]
    width = max(map(len, names))
    heads = [f"N={r['n']}{'*' if r.get('pipecat_saturated') else ''}" for r in rows]
    print(f"{'':>{width}} | " + " | ".join(f"{h:>22}" for h in heads))
    for name in names:
        cells = []
        for r in rows:
            cell = r[name]
            cells.append(
                f"{fmt(cell['callbridge'], '.2f'):>7} → {fmt(cell['pipecat'], '.2f'):>7} "
                f"{('×' + fmt(cell['ratio'], '.1f')) if cell['ratio'] is not None else '-':>5}"
            )
        print(f"{name:>{width}} | " + " | ".join(f"{c:>22}" for c in cells))


def stop_reason(row: dict[str, Any]) -> str | None:
    for way in ("up", "down"):
        lat = row[way]["added_ms"] or row[way]["through_ms"]
        if lat["p99"] is not None and lat["p99"] > SWEEP_P99_LIMIT_MS:
            return f"{way} p99 {lat['p99']:.2f} ms > {SWEEP_P99_LIMIT_MS} ms"
        if row[way]["lost"]:
            return f"{row[way]['lost']} {way} frames lost"
    if row["failures"]:
        return f"{row['failures']} calls failed"
    return None


def print_saved(path: Path) -> None:
    """The tables of a saved run, as ``bench.run`` printed them."""
    out = json.loads(path.read_text())
    workers = int(out.get("args", {}).get("workers", 1))
    if out.get("summary"):
        print_table(out["summary"], f"callbridge ({out['args']['mode']})", workers)
    if out.get("peer_summary"):
        print_table(out["peer_summary"], "pipecat (24 kHz PCM to the engine, always)")
    print(TABLE_NOTE)
    print_ratios(ratios(out.get("summary", []), out.get("peer_summary", [])))


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print_saved(Path(arg))
