"""Draw a bench result against N: latency p99, CPU per call-second, memory per call, barge-in.

``python -m bench.plot bench/results/<time>.json [out.png]``. Each panel has one series per system
run: the baseline (no bridge; latency only), callbridge and, with ``--peer pipecat``, Pipecat.
Without matplotlib it says so and does nothing: the JSON and the table are the result, the
picture is a convenience.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SERIES = (("callbridge", "summary", "tab:blue"), ("pipecat", "peer_summary", "tab:orange"))
SATURATED_PCT = 95.0


def _series(report: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], str]]:
    return [(name, report[key], color) for name, key, color in SERIES if report.get(key)]


def plot(results: Path, png: Path) -> str:
    """Write ``png`` from the results JSON; return a one-line message saying what happened."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot: matplotlib is not installed (pip install matplotlib); no PNG written"
    report: dict[str, Any] = json.loads(results.read_text())
    series = _series(report)
    if not series:
        return "plot: no points to draw"
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    (up, down), (cpu, other) = axes
    rows0 = series[0][1]
    for ax, way in ((up, "up"), (down, "down")):
        if rows0[0][way]["baseline_ms"] is not None:
            n = [r["n"] for r in rows0]
            base = [r[way]["baseline_ms"]["p99"] for r in rows0]
            ax.plot(n, base, "^:", color="tab:gray", label="baseline (no bridge) p99")
        for name, rows, color in series:
            n = [r["n"] for r in rows]
            ax.plot(
                n,
                [r[way]["through_ms"]["p99"] for r in rows],
                "o-",
                color=color,
                label=f"{name} p99",
            )
            ax.plot(
                n,
                [r[way]["through_ms"]["p50"] for r in rows],
                "s--",
                color=color,
                alpha=0.6,
                label=f"{name} p50",
            )
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_title(f"{'caller → engine' if way == 'up' else 'engine → caller'} frame latency")
        ax.set_xlabel("concurrent calls (N)")
        ax.set_ylabel("ms (log above 1)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for name, rows, color in series:
        n = [r["n"] for r in rows]
        cpu.plot(
            n,
            [1000 * r["bridge_cpu_s_per_call_s"] for r in rows],
            "o-",
            color=color,
            label=f"{name} CPU ms per call-s",
        )
        other.plot(
            n,
            [r["rss_per_call_kib"] for r in rows],
            "o-",
            color=color,
            label=f"{name} RSS KiB per call",
        )
        other.plot(
            n, [r["clear_ms"]["p50"] for r in rows], "x:", color=color, label=f"{name} clear p50 ms"
        )
    saturated = [
        (r["n"], 1000 * r["bridge_cpu_s_per_call_s"])
        for _, rows, _ in series
        for r in rows
        if r["bridge_core_pct"] >= SATURATED_PCT * int(report.get("args", {}).get("workers", 1))
        or (r["target"] != "callbridge" and r["bridge_core_pct"] >= SATURATED_PCT)
    ]
    if saturated:
        cpu.scatter(
            *zip(*saturated, strict=True),
            s=160,
            facecolors="none",
            edgecolors="red",
            label="saturated (≥ 95 % of its core): a lower bound",
        )
    cpu.set_ylim(bottom=0)
    cpu.set_title("CPU per call-second (the system under test)")
    other.set_title("memory per call and barge-in clear latency")
    for ax in (cpu, other):
        ax.set_xlabel("concurrent calls (N)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    other.set_yscale("symlog", linthresh=1.0)
    args = report.get("args", {})
    fig.suptitle(
        f"callbridge{' vs Pipecat' if report.get('peer_summary') else ''} bench — "
        f"{args.get('mode', '?')}, {args.get('workers', '?')} worker(s)"
        f"{' on its own CPU (--pin)' if args.get('pin') else ', cores shared with the load'}, "
        f"{args.get('duration', '?')} s per N, {report.get('machine', {}).get('cpus', '?')} cores",
        fontsize=10,
    )
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return f"plot: {png}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__)
        return 2
    results = Path(argv[0])
    png = Path(argv[1]) if len(argv) > 1 else results.with_suffix(".png")
    print(plot(results, png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
