"""``python -m bench.run``: load-test the bridge with N concurrent calls, and report what it costs.

Three processes share the machine, all on loopback:

* the **target**: the bridge (``callbridge serve``) or, with ``--peer pipecat``, also Pipecat's
  Twilio + OpenAI Realtime bot (:mod:`bench.peers.pipecat_peer`), each pointed at
* the **fake engine** (:mod:`bench.fake_engine`, an OpenAI Realtime GA look-alike), and
* the **load generator** (:mod:`bench.loadgen`, N Twilio Media Streams calls).

For each N the orchestrator starts a fresh fake engine, then the load generator with an absolute
start time, samples the target's CPU time and RSS from ``/proc`` at the window's edges, and joins
both ends' frame records (:mod:`bench.analyze`). A *baseline* run of the same load generator
straight against the fake engine (no bridge) gives the latency of the hops without it; "added"
latency is through-target percentile − baseline percentile. Each N runs baseline, callbridge,
then the peer, with the same engine script, pacing and measurement.

The load generator and fake engine run on the same cores as the target: their CPU is reported too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.analyze import analyze
from bench.ga_check import check_client_events
from bench.procs import (
    BenchError,
    Idle,
    Usage,
    cpu_split,
    free_port,
    pin,
    stop_process,
    tail,
    wait_quiet,
)
from bench.profile import start_profiler, summarize_profile
from bench.targets import MODES, ROOT, Bridge, Server

RESULTS = ROOT / "bench" / "results"
SWEEP = (25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000)
MAX_CALLS = 1000
MAX_DURATION_S = 300.0


def start_engine(
    args: argparse.Namespace, port: int, report: Path, log: Path
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.fake_engine", "--port", str(port), "--report", str(report)]
    cmd += ["--max-seconds", str(args.duration + 600)]
    cmd += args.engine_arg
    with log.open("wb") as err:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, start_new_session=True
        )
    pin(proc, args.harness_cpus)
    try:
        wait_for_ready(proc, log)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def wait_for_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 15.0) -> None:
    """Read the fake engine's stdout until it prints READY (it is then listening)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buffer = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            buffer += os.read(fd, 4096)
            if b"READY" in buffer:
                return
        if proc.poll() is not None:
            raise BenchError(f"the fake engine exited: {tail(log)}")
    raise BenchError(f"the fake engine did not start within {timeout} s: {tail(log)}")


def start_loadgen(
    args: argparse.Namespace, *, url: str, n: int, target: str, stamps: bool, t0: float, out: Path
) -> subprocess.Popen[Any]:
    cmd = [sys.executable, "-m", "bench.loadgen", "--url", url, "--calls", str(n)]
    cmd += ["--target", target, "--t0", repr(t0), "--stamps", "on" if stamps else "off"]
    cmd += ["--duration", str(args.duration), "--ramp-rate", str(args.ramp_rate)]
    cmd += ["--settle", str(args.settle), "--tail", str(args.tail)]
    cmd += ["--agent", MODES[args.mode].agent, "--out", str(out)]
    with out.with_suffix(".log").open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    pin(proc, args.harness_cpus)
    return proc


def run_point(
    args: argparse.Namespace, workdir: Path, *, n: int, engine_port: int, target: Server | None
) -> dict[str, Any]:
    """One N against ``target`` (or, with None, the baseline straight to the engine)."""
    name = target.name if target else "baseline"
    stamps = target is None or target.stamps
    tag = f"{name}-{n}"
    eng_report, lg_out = workdir / f"engine-{tag}.npz", workdir / f"loadgen-{tag}.npz"
    engine = start_engine(args, engine_port, eng_report, workdir / f"engine-{tag}.log")
    loadgen = profiler = None
    try:
        idle = Idle.begin(target.pid if target else None)
        t0 = idle.t + 2.0  # the load generator starts meanwhile; the target is idle
        w0 = t0 + n / args.ramp_rate + args.settle
        w1 = w0 + args.duration
        if target is not None:
            url, kind = target.url, "twilio"
        else:
            url, kind = f"ws://127.0.0.1:{engine_port}/v1/realtime?model=gpt-realtime", "direct"
        loadgen = start_loadgen(args, url=url, n=n, target=kind, stamps=stamps, t0=t0, out=lg_out)
        usage = Usage({"engine": engine.pid, "loadgen": loadgen.pid})
        if target is not None:
            usage.pids["bridge"] = target.pid
        sleep_until(t0 - 0.05)
        idle.end()
        sleep_until(w0)
        if target is not None and args.profile:
            profiler = start_profiler(target.pid, args.duration, workdir / f"profile-{tag}.txt")
        usage.sample_until(w1)
        try:
            loadgen.wait(max(1.0, w1 + args.tail + 40 - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"the load generator did not finish: {tail(lg_out.with_suffix('.log'))}"
            ) from None
        if loadgen.returncode != 0:
            raise BenchError(f"the load generator failed: {tail(lg_out.with_suffix('.log'))}")
    finally:
        if loadgen is not None:
            stop_process(loadgen)
        stop_process(engine)
        if profiler is not None:
            stop_process(profiler, signal.SIGINT, wait=30)
    if not eng_report.exists():
        raise BenchError(f"the fake engine wrote no report: {tail(workdir / f'engine-{tag}.log')}")
    method = "stamps" if stamps else "markers"
    result = {"n": n, "target": name, **analyze(lg_out, eng_report, method=method)}
    result["window_s"] = round(usage.t1 - usage.t0, 3)
    result["cpu"] = usage.report()
    if target is not None:
        result["bridge"] = target_figures(target, usage, idle, n)
    if profiler is not None:
        result["profile"] = summarize_profile(workdir / f"profile-{tag}.txt")
    return result


def target_figures(target: Server, usage: Usage, idle: Idle, n: int) -> dict[str, Any]:
    """The target's CPU per call-second and memory per call over the window."""
    peak = usage.rss_peak["bridge"]
    figures: dict[str, Any] = {
        "cpu_s_per_call_s": round(usage.cpu_s("bridge") / (n * (usage.t1 - usage.t0)), 6),
        "idle_core_pct": round(100 * idle.core, 1),
        "rss_startup_kib": target.rss_startup,
        "rss_idle_kib": idle.rss,
        "rss_load_kib": peak,
        "rss_per_call_kib": round((peak - target.rss_startup) / n, 1),
        "rss_per_call_vs_pre_run_kib": round((peak - idle.rss) / n, 1),
    }
    live = target.wait_idle()
    if live:
        figures["calls_still_live_30s_after"] = live
    return figures


def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def plan_calls(args: argparse.Namespace) -> list[int]:
    if args.sweep:
        return [n for n in SWEEP if n <= args.max_calls]
    calls = [int(x) for x in args.calls.split(",") if x.strip()]
    if not calls or any(not 1 <= n <= args.max_calls for n in calls):
        raise SystemExit(f"--calls takes numbers 1..{args.max_calls}")
    return calls


@contextlib.contextmanager
def workspace(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="callbridge-bench-") as tmp:
        yield Path(tmp)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--calls", default="10,50,100", help="comma-separated N values")
    p.add_argument(
        "--sweep",
        action="store_true",
        help=f"grow N until p99 > {report.SWEEP_P99_LIMIT_MS} ms or loss",
    )
    p.add_argument("--max-calls", type=int, default=400, help=f"upper bound on N (≤ {MAX_CALLS})")
    p.add_argument("--duration", type=float, default=20.0, help="measurement window per N, s")
    p.add_argument("--workers", type=int, default=1, help="bridge worker processes")
    p.add_argument("--mode", choices=sorted(MODES), default="passthrough")
    p.add_argument(
        "--peer",
        choices=("none", "pipecat"),
        default="none",
        help="also run the same load against a peer (pipecat: its venv is created when missing)",
    )
    p.add_argument(
        "--baseline",
        choices=("each", "none"),
        default="each",
        help="run the no-bridge baseline at every N (default) or not at all",
    )
    p.add_argument("--ramp-rate", type=float, default=50.0, help="calls opened per second")
    p.add_argument("--settle", type=float, default=1.0, help="seconds after the ramp")
    p.add_argument("--tail", type=float, default=2.0, help="seconds after the window")
    p.add_argument("--out", type=Path, help="results JSON (default bench/results/<time>.json)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--profile", action="store_true", help="py-spy the bridge in each window")
    p.add_argument("--keep-raw", type=Path, help="keep records, logs and the journal here")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="before each run wait up to this many seconds for the rest of the machine to be quiet",
    )
    p.add_argument(
        "--quiet-limit",
        type=float,
        default=15.0,
        help="'quiet' = other processes use less than this %% of one core",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="give the target its own CPU(s) and the load processes the rest (every run)",
    )
    p.add_argument("--bridge-log-level", default="warning")
    p.add_argument(
        "--bridge-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the bridge (repeatable)",
    )
    p.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for bench.fake_engine, e.g. --engine-arg=--speed=8",
    )
    args = p.parse_args(argv)
    if not 1 <= args.max_calls <= MAX_CALLS:
        p.error(f"--max-calls must be 1..{MAX_CALLS}")
    if not 1 <= args.duration <= MAX_DURATION_S:
        p.error(f"--duration must be 1..{MAX_DURATION_S} s")
    if not 1 <= args.workers <= 16:
        p.error("--workers must be 1..16")
    if any("=" not in kv for kv in args.bridge_env):
        p.error("--bridge-env takes KEY=VALUE")
    args.bridge_cpus, args.harness_cpus = cpu_split(args.workers) if args.pin else (None, None)
    return args


def sweep_point(
    args: argparse.Namespace,
    workdir: Path,
    n: int,
    *,
    engine_port: int,
    targets: list[Server],
    out: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Baseline (if asked), then every target at one N, each after a quiet moment."""
    own = [t.pid for t in targets]
    base = None
    if args.baseline == "each":
        quiet = wait_quiet(args.wait_quiet, args.quiet_limit, own)
        base = run_point(args, workdir, n=n, engine_port=engine_port, target=None)
        base["machine_before"] = quiet
        out["points"].append(base)
    rows = {}
    for target in targets:
        quiet = wait_quiet(args.wait_quiet, args.quiet_limit, own)
        run = run_point(args, workdir, n=n, engine_port=engine_port, target=target)
        run["machine_before"] = quiet
        out["points"].append(run)
        rows[target.name] = report.point_summary(run, base, args.quiet_limit)
        out["summary" if target.name == "callbridge" else "peer_summary"].append(rows[target.name])
        print(f"N={n}: {target.name} done", file=sys.stderr, flush=True)
    return rows


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every finally: children are stopped by pid


METHOD = {
    "latency": "per frame: receive time − the sender's own record of when it sent that frame, "
    "CLOCK_MONOTONIC µs; up = load generator send → fake engine receive of the append holding "
    "the frame's first sample; down = fake engine send of the delta → load generator receive of "
    "the Twilio media holding it",
    "frames": "stamps: a byte stamp in each 160-byte μ-law frame (passthrough only); markers: a "
    "1 kHz sync frame once a second up and at the start of every answer down, frames in "
    "between counted in samples (bench/marker.py, bench/align.py); on passthrough runs both "
    "are computed and compared (marker_check)",
    "added": "through-target percentile − baseline percentile at the same N "
    "(baseline = the same load generator speaking Realtime straight to the fake engine)",
    "window": "frames sent between ramp end + settle and + duration",
    "cpu": "utime+stime of the process tree from /proc over the window",
    "rss_per_call": "(peak VmRSS of the target tree during the window − VmRSS right "
    "after start-up) / N",
    "ratios": "pipecat / callbridge at the same N; not computed when callbridge's figure is "
    "below 0.05",
}


def start_targets(
    args: argparse.Namespace, workdir: Path, engine_port: int, out: dict[str, Any]
) -> list[Server]:
    """callbridge, then the peer (its venv first, when missing): each started and healthy."""
    targets: list[Server] = [Bridge(args, workdir, engine_port)]
    if args.peer == "pipecat":
        from bench.peers import pipecat_peer as pipecat

        try:
            out["peer"] = {"name": "pipecat", "venv": pipecat.ensure_venv(workdir / "pip.log")}
        except BenchError:
            targets[0].stop()
            raise
        targets.append(pipecat.PipecatPeer(args, workdir, engine_port))
    for target in targets:
        health = target.wait_ready()
        out["bridge" if target.name == "callbridge" else "peer"].update(
            {"cmd": target.cmd, "health": health}
        )
    return targets


def ga_checks(out: dict[str, Any]) -> dict[str, Any]:
    """What each target sent the engine, checked against the GA client event types."""
    checks: dict[str, Any] = {}
    for point in out["points"]:
        samples = point.get("engine", {}).get("client_event_samples")
        if point["target"] != "baseline" and samples and point["target"] not in checks:
            checks[point["target"]] = check_client_events(samples)
    return checks


def print_results(out: dict[str, Any]) -> None:
    workers = int(out["args"]["workers"])
    if out["summary"]:
        report.print_table(out["summary"], f"callbridge ({out['args']['mode']})", workers)
    if out.get("peer_summary"):
        report.print_table(out["peer_summary"], "pipecat (24 kHz PCM to the engine, always)")
    if out["summary"] or out.get("peer_summary"):
        print(report.TABLE_NOTE)
    report.print_ratios(out.get("ratios", []))
    for point in out["points"]:
        if "profile" in point:
            print(f"\nprofile {point['target']} N={point['n']}, samples holding the GIL (own %):")
            for name, pct in point["profile"].get("by_area_pct", []):
                print(f"  {pct:5.1f}  {name}")
            print("top functions (own %):")
            for name, pct in point["profile"].get("own_pct", [])[:15]:
                print(f"  {pct:5.1f}  {name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if args.harness_cpus:
        os.sched_setaffinity(0, args.harness_cpus)  # the orchestrator keeps off the target's CPU
    calls = plan_calls(args)
    started = datetime.now(UTC)
    path = args.out or RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out: dict[str, Any] = {
        "started": started.isoformat(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "method": METHOD,
        "bridge": {},
        "points": [],
        "summary": [],
    }
    if args.peer != "none":
        out.update(peer={}, peer_summary=[], ratios=[])
    with workspace(args.keep_raw) as workdir:
        engine_port = free_port()
        targets: list[Server] = []
        try:
            targets = start_targets(args, workdir, engine_port, out)
            for n in calls:
                rows = sweep_point(
                    args, workdir, n, engine_port=engine_port, targets=targets, out=out
                )
                if args.peer != "none":
                    out["ratios"] = report.ratios(out["summary"], out["peer_summary"])
                reason = report.stop_reason(rows["callbridge"])
                if args.sweep and reason:
                    out["sweep_stopped"] = f"N={n}: {reason}"
                    break
        except BenchError as exc:
            out["error"] = str(exc)
            print(f"bench: {exc}", file=sys.stderr)
        finally:
            for target in targets:
                target.stop()
                out.setdefault("logs", {})[target.name] = tail(target.log, 20)
    out["ga_check"] = ga_checks(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print_results(out)
    print(f"results: {path}")
    if out["summary"] and not args.no_plot:
        from bench.plot import plot

        print(plot(path, path.with_suffix(".png")))
    return 1 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main())
