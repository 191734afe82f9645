"""Draw a bench result: latency p99 and bridge CPU per call-second against N (needs matplotlib).

``python -m bench.plot bench/results/<time>.json [out.png]``. Without matplotlib it says so and
does nothing: the JSON and the table are the result, the picture is a convenience.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def plot(results: Path, png: Path) -> str:
    """Write ``png`` from the results JSON; return a one-line message saying what happened."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot: matplotlib is not installed (pip install matplotlib); no PNG written"
    report: dict[str, Any] = json.loads(results.read_text())
    rows = report.get("summary") or []
    if not rows:
        return "plot: no points to draw"
    n = [r["n"] for r in rows]
    fig, (lat, cpu) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for way, marker, color in (("up", "o", "tab:blue"), ("down", "s", "tab:green")):
        through = [r[way]["through_ms"]["p99"] for r in rows]
        lat.plot(n, through, marker=marker, color=color, label=f"{way} p99 through bridge")
        if rows[0][way]["added_ms"] is not None:
            added = [r[way]["added_ms"]["p99"] for r in rows]
            lat.plot(
                n,
                added,
                marker=marker,
                color=color,
                linestyle="--",
                alpha=0.6,
                label=f"{way} p99 added",
            )
    lat.set_xlabel("concurrent calls (N)")
    lat.set_ylabel("ms")
    lat.set_title("frame latency p99")
    lat.grid(alpha=0.3)
    lat.legend(fontsize=8)
    cpu.plot(n, [1000 * r["bridge_cpu_s_per_call_s"] for r in rows], "o-", color="tab:red")
    cpu.set_ylim(bottom=0)
    cpu.set_xlabel("concurrent calls (N)")
    cpu.set_ylabel("bridge CPU ms per call-second")
    cpu.set_title("bridge CPU per call-second")
    cpu.grid(alpha=0.3)
    args = report.get("args", {})
    fig.suptitle(
        f"callbridge bench — {args.get('mode', '?')}, {args.get('workers', '?')} worker(s)"
        f"{' on its own CPU (--pin)' if args.get('pin') else ', cores shared with the load'}, "
        f"{args.get('duration', '?')} s per N, {report.get('machine', {}).get('cpus', '?')} cores",
        fontsize=10,
    )
    fig.savefig(png, dpi=110)
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
