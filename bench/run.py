"""``python -m bench.run``: load-test the bridge with N concurrent calls, and report what it costs.

Three processes share the machine, all on loopback:

* the **bridge** (``callbridge serve``) pointed at
* the **fake engine** (:mod:`bench.fake_engine`, an OpenAI Realtime GA look-alike), and
* the **load generator** (:mod:`bench.loadgen`, N Twilio Media Streams calls).

For each N the orchestrator starts a fresh fake engine, then the load generator with an absolute
start time, samples the bridge's CPU time and RSS from ``/proc`` at the window's edges, and joins
the stamped-frame records of both ends (:mod:`bench.stats`). A *baseline* run of the same load
generator straight against the fake engine (no bridge) gives the latency of the hops without it;
"added" latency is through-bridge percentile − baseline percentile.

The load generator and fake engine run on the same cores as the bridge: their CPU is reported too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import stats

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SWEEP = (25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000)
MAX_CALLS = 1000
MAX_DURATION_S = 300.0
SWEEP_P99_LIMIT_MS = 5.0
CLEAR_MAX_WAIT_US = 2_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The bench could not run (a process did not start, a run did not finish)."""


# -- modes: what the bridge is asked to do with the audio ---------------------------------------


@dataclass(frozen=True, slots=True)
class Mode:
    """How a mode sets the bridge up. Passthrough keeps μ-law end to end, so stamps survive.

    A ``transcode`` mode would point the agent at ``audio/pcm`` 24 kHz: the bridge then resamples
    and re-encodes, so byte stamps no longer survive. It needs a different frame marker (e.g. a
    per-frame tone or a timing correlation of an impulse train) behind the same records.
    """

    name: str
    agent: str
    bridge_env: dict[str, str] = field(default_factory=dict)


MODES = {"passthrough": Mode("passthrough", agent="default")}


# -- /proc ---------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime + stime ticks) of ``pid``, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2 :].split()
    return int(rest[1]), int(rest[11]) + int(rest[12])


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float:
    """User + system CPU time of ``root`` and its live descendants."""
    total = 0
    for pid in process_tree(root):
        st = _stat(pid)
        if st is not None:
            total += st[1]
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time every process of the machine has used since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def wait_quiet(
    max_wait: float, limit_pct: float, own: list[int], seconds: int = 3
) -> dict[str, float]:
    """Wait (at most ``max_wait`` s) until the rest of the machine has used less than
    ``limit_pct`` % of a core for ``seconds`` consecutive seconds.

    The machine may be shared: another busy process makes every figure of the bench worse, so
    the orchestrator waits for a quiet moment and records what it saw.
    """
    start = time.monotonic()
    quiet: list[float] = []
    while True:
        t, busy = time.monotonic(), machine_busy_seconds()
        ours = sum(cpu_seconds(pid) for pid in own)
        time.sleep(1.0)
        ours = sum(cpu_seconds(pid) for pid in own) - ours
        pct = max(0.0, 100 * (machine_busy_seconds() - busy - ours) / (time.monotonic() - t))
        quiet = [*quiet, pct] if pct < limit_pct else []
        waited = time.monotonic() - start
        if len(quiet) >= seconds or waited >= max_wait:
            return {"others_core_pct": round(pct, 1), "waited_s": round(waited, 1)}


def rss_kib(root: int) -> int:
    """Resident memory of ``root`` and its live descendants (VmRSS)."""
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


# -- processes -----------------------------------------------------------------------------------


def pin(proc: subprocess.Popen[Any], cpus: list[int] | None) -> None:
    """Restrict our child ``proc`` (and the threads and processes it starts later) to ``cpus``."""
    if cpus:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(proc.pid, cpus)


def cpu_split(workers: int) -> tuple[list[int], list[int]]:
    """``--pin``: the bridge gets the last ``workers`` CPUs, the load processes the others."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) <= workers:
        return cpus, cpus
    return cpus[-workers:], cpus[:-workers]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, wait: float = 10) -> None:
    """Signal our own child by pid, wait, then kill it if it would not go."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def http_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class Bridge:
    """The ``callbridge serve`` subprocess."""

    def __init__(self, args: argparse.Namespace, workdir: Path, engine_port: int) -> None:
        self.port = free_port()
        self.log = workdir / "bridge.log"
        exe = Path(sys.executable).parent / "callbridge"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bridge.cli"]
        cmd += ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--workers", str(args.workers), "--log-level", args.bridge_log_level]
        env = dict(os.environ)
        env.update(
            {
                "CALLBRIDGE_OPENAI_REALTIME_URL": f"ws://127.0.0.1:{engine_port}/v1/realtime",
                "OPENAI_API_KEY": "sk-bench",
                "CALLBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
                "CALLBRIDGE_MAX_CALLS": str(max(args.max_calls, 1) * 2 + 10),
            }
        )
        env.update(MODES[args.mode].bridge_env)
        env.update(dict(kv.split("=", 1) for kv in args.bridge_env))
        self.cmd = cmd
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        pin(self.proc, args.bridge_cpus)
        self.pid = self.proc.pid
        self.rss_startup = 0

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"the bridge exited with code {self.proc.returncode}:\n{tail(self.log)}"
                )
            with contextlib.suppress(OSError, ValueError):
                health = http_json(f"http://127.0.0.1:{self.port}/healthz")
                if health.get("status") == "ok":
                    self.rss_startup = rss_kib(self.pid)
                    return dict(health)
            time.sleep(0.2)
        raise BenchError(
            f"the bridge did not answer /healthz within {timeout} s:\n{tail(self.log)}"
        )

    def wait_idle(self, timeout: float = 30.0) -> int:
        """Wait until the bridge carries no call; return the live count seen last."""
        deadline = time.monotonic() + timeout
        live = -1
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                live = int(http_json(f"http://127.0.0.1:{self.port}/healthz")["live_calls"])
                if live == 0:
                    return 0
            time.sleep(0.25)
        return live

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT, wait=15)


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


# -- one point of the sweep ----------------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    """CPU time and peak RSS of named process trees over one window, sampled from /proc."""

    pids: dict[str, int]
    cpu0: dict[str, float] = field(default_factory=dict)
    cpu1: dict[str, float] = field(default_factory=dict)
    rss_peak: dict[str, int] = field(default_factory=dict)
    t0: float = 0.0
    t1: float = 0.0
    machine0: float = 0.0
    machine1: float = 0.0

    def sample_until(self, end: float) -> None:
        self.t0 = time.monotonic()
        self.machine0 = machine_busy_seconds()
        self.cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.rss_peak = dict.fromkeys(self.pids, 0)
        while time.monotonic() < end - 0.05:
            for name, pid in self.pids.items():
                self.rss_peak[name] = max(self.rss_peak[name], rss_kib(pid))
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        self.t1 = time.monotonic()
        self.cpu1 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.machine1 = machine_busy_seconds()

    def cpu_s(self, name: str) -> float:
        return self.cpu1[name] - self.cpu0[name]

    def report(self) -> dict[str, Any]:
        """Per process tree, plus ``others``: what the rest of the machine used meanwhile."""
        wall = self.t1 - self.t0
        out: dict[str, Any] = {
            name: {
                "cpu_s": round(self.cpu_s(name), 3),
                "core_pct": round(100 * self.cpu_s(name) / wall, 1),
                "rss_peak_kib": self.rss_peak[name],
            }
            for name in self.pids
        }
        others = self.machine1 - self.machine0 - sum(map(self.cpu_s, self.pids))
        out["others"] = {
            "cpu_s": round(others, 3),
            "core_pct": round(100 * max(0.0, others) / wall, 1),
            "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0]),
        }
        return out


@dataclass(slots=True)
class Idle:
    """The bridge's CPU use and RSS with no call, just before the load starts."""

    pid: int | None
    t: float
    cpu: float
    rss: int
    core: float = 0.0

    @classmethod
    def begin(cls, pid: int | None) -> Idle:
        if pid is None:
            return cls(None, time.monotonic(), 0.0, 0)
        return cls(pid, time.monotonic(), cpu_seconds(pid), rss_kib(pid))

    def end(self) -> None:
        if self.pid is not None:
            self.core = (cpu_seconds(self.pid) - self.cpu) / max(1e-3, time.monotonic() - self.t)


def start_loadgen(
    args: argparse.Namespace, *, url: str, n: int, target: str, t0: float, out: Path
) -> subprocess.Popen[Any]:
    cmd = [sys.executable, "-m", "bench.loadgen", "--url", url, "--calls", str(n)]
    cmd += ["--target", target, "--t0", repr(t0)]
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
    args: argparse.Namespace, workdir: Path, *, n: int, engine_port: int, bridge: Bridge | None
) -> dict[str, Any]:
    """One N against the bridge (or, with ``bridge=None``, the baseline straight to the engine)."""
    tag = f"{'bridge' if bridge else 'baseline'}-{n}"
    eng_report, lg_out = workdir / f"engine-{tag}.npz", workdir / f"loadgen-{tag}.npz"
    engine = start_engine(args, engine_port, eng_report, workdir / f"engine-{tag}.log")
    loadgen = profiler = None
    try:
        idle = Idle.begin(bridge.pid if bridge else None)
        t0 = idle.t + 2.0  # the load generator starts meanwhile; the bridge is idle
        w0 = t0 + n / args.ramp_rate + args.settle
        w1 = w0 + args.duration
        if bridge is not None:
            url, target = f"ws://127.0.0.1:{bridge.port}/twilio/media", "twilio"
        else:
            url, target = f"ws://127.0.0.1:{engine_port}/v1/realtime?model=gpt-realtime", "direct"
        loadgen = start_loadgen(args, url=url, n=n, target=target, t0=t0, out=lg_out)
        usage = Usage({"engine": engine.pid, "loadgen": loadgen.pid})
        if bridge is not None:
            usage.pids["bridge"] = bridge.pid
        sleep_until(t0 - 0.05)
        idle.end()
        sleep_until(w0)
        if bridge is not None and args.profile:
            profiler = start_profiler(bridge.pid, args.duration, workdir / f"profile-{n}.txt")
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
    result = {"n": n, "target": "bridge" if bridge else "baseline", **analyze(lg_out, eng_report)}
    result["window_s"] = round(usage.t1 - usage.t0, 3)
    result["cpu"] = usage.report()
    if bridge is not None:
        peak = usage.rss_peak["bridge"]
        result["bridge"] = {
            "cpu_s_per_call_s": round(usage.cpu_s("bridge") / (n * (usage.t1 - usage.t0)), 6),
            "idle_core_pct": round(100 * idle.core, 1),
            "rss_startup_kib": bridge.rss_startup,
            "rss_idle_kib": idle.rss,
            "rss_load_kib": peak,
            "rss_per_call_kib": round((peak - bridge.rss_startup) / n, 1),
            "rss_per_call_vs_pre_run_kib": round((peak - idle.rss) / n, 1),
        }
        live = bridge.wait_idle()
        if live:
            result["bridge"]["calls_still_live_30s_after"] = live
    if profiler is not None:
        result["profile"] = summarize_profile(workdir / f"profile-{n}.txt")
    return result


def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def analyze(lg_out: Path, eng_report: Path) -> dict[str, Any]:
    """Join both ends' records over the measurement window (see :mod:`bench.stats`)."""
    lg, eng = np.load(lg_out), np.load(eng_report)
    lg_sum = json.loads(lg_out.with_suffix(".json").read_text())
    eng_sum = json.loads(eng_report.with_suffix(".json").read_text())
    w0, w1 = int(lg_sum["window_start_us"]), int(lg_sum["window_end_us"])

    up = stats.in_window(eng["up_sent_us"], w0, w1)
    up_sent = stats.in_window(lg["up_sent_us"], w0, w1)
    dn = stats.in_window(lg["dn_sent_us"], w0, w1)
    dn_sent = stats.in_window(eng["dn_sent_us"], w0, w1)
    barge = stats.in_window(eng["barge_us"], w0, w1)
    clears, missed = stats.pair_clears(
        eng["barge_conn"][barge],
        eng["barge_us"][barge],
        lg["clear_conn"],
        lg["clear_us"],
        CLEAR_MAX_WAIT_US,
    )
    first_audio = [x for x in lg_sum["first_audio_ms"] if x is not None]
    return {
        "up": {
            "latency_ms": stats.percentiles(eng["up_recv_us"][up] - eng["up_sent_us"][up]),
            "sent": int(np.count_nonzero(up_sent)),
            "lost": stats.lost(
                stats.pack_keys(lg["up_call"][up_sent], lg["up_seq"][up_sent]),
                stats.pack_keys(eng["up_call"], eng["up_seq"]),
            ),
        },
        "down": {
            "latency_ms": stats.percentiles(lg["dn_recv_us"][dn] - lg["dn_sent_us"][dn]),
            "sent": int(np.count_nonzero(dn_sent)),
            "lost": stats.lost(
                stats.pack_keys(eng["dn_conn"][dn_sent], eng["dn_seq"][dn_sent]),
                stats.pack_keys(lg["dn_conn"], lg["dn_seq"]),
            ),
        },
        "clear_ms": stats.percentiles(clears),
        "clear_missed": missed,
        "first_audio_ms": stats.percentiles(np.asarray(first_audio) * 1000.0),
        "first_audio_missing": len(lg_sum["first_audio_ms"]) - len(first_audio),
        "loadgen": {
            "send_late_ms": stats.percentiles(
                lg["up_sent_us"][up_sent] - lg["up_sched_us"][up_sent]
            ),
            **{
                k: lg_sum[k]
                for k in (
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
                )
            },
        },
        "engine": {
            k: eng_sum[k]
            for k in (
                "connections",
                "frames_received",
                "frames_sent",
                "barge_ins",
                "unstamped_frames",
                "odd_appends",
                "errors_sent",
            )
        },
    }


# -- profiling -----------------------------------------------------------------------------------


def start_profiler(pid: int, duration: float, out: Path) -> subprocess.Popen[Any] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("profile: py-spy is not installed (pip install py-spy); skipping", file=sys.stderr)
        return None
    cmd = [exe, "record", "--pid", str(pid), "--subprocesses", "--gil", "--nonblocking"]
    cmd += ["--rate", "200"]
    cmd += ["--duration", str(max(1, int(duration))), "--format", "raw", "--output", str(out)]
    log = out.with_suffix(".log").open("wb")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def summarize_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Top functions by own (leaf) samples and by inclusive samples, from py-spy's raw format."""
    if not path.exists():
        return {"error": f"no profile: {tail(path.with_suffix('.log'), 5)}"}
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            incl[frame] = incl.get(frame, 0) + count

    def ranked(table: dict[str, int], limit: int = top) -> list[tuple[str, float]]:
        best = sorted(table.items(), key=lambda kv: -kv[1])[:limit]
        return [(name, round(100 * c / max(total, 1), 1)) for name, c in best]

    areas: dict[str, int] = {}
    for frame, count in own.items():
        area = profile_area(frame)
        areas[area] = areas.get(area, 0) + count
    return {
        "samples": total,
        "by_area_pct": ranked(areas, len(areas)),
        "own_pct": ranked(own),
        "inclusive_pct": ranked(incl),
    }


PROFILE_AREAS = (
    # (area, substrings of the leaf frame), first match wins
    (
        "socket writes (transport.write → send syscall)",
        ("connection.py:969)", "sansio_impl.py:506)"),
    ),
    ("websockets library (framing, parsing, send/recv plumbing)", ("websockets/", "contextlib")),
    ("uvicorn + starlette ASGI plumbing", ("uvicorn/", "starlette/", "fastapi/")),
    ("bridge code (codec, session, runtime, engine protocol)", ("bridge/",)),
    ("journal (aiosqlite, SQLAlchemy)", ("aiosqlite", "sqlalchemy", "sqlite")),
    ("event loop and asyncio (uvloop C code shows as Runner.run)", ("asyncio/", "uvloop")),
)


def profile_area(frame: str) -> str:
    """Which part of the stack a leaf frame belongs to (py-spy names frames 'func (file:line)')."""
    for area, needles in PROFILE_AREAS:
        if any(needle in frame for needle in needles):
            return area
    return "other"


# -- the sweep -----------------------------------------------------------------------------------


def plan_calls(args: argparse.Namespace) -> list[int]:
    if args.sweep:
        return [n for n in SWEEP if n <= args.max_calls]
    calls = [int(x) for x in args.calls.split(",") if x.strip()]
    if not calls or any(not 1 <= n <= args.max_calls for n in calls):
        raise SystemExit(f"--calls takes numbers 1..{args.max_calls}")
    return calls


def point_summary(
    bridge: dict[str, Any], base: dict[str, Any] | None, quiet_limit: float
) -> dict[str, Any]:
    """The headline figures of one N."""
    out: dict[str, Any] = {"n": bridge["n"]}
    for way in ("up", "down"):
        lat = bridge[way]["latency_ms"]
        out[way] = {
            "through_ms": {k: lat[k] for k in ("p50", "p99", "p999", "max")},
            "added_ms": stats.added(lat, base[way]["latency_ms"]) if base else None,
            "baseline_ms": {k: base[way]["latency_ms"][k] for k in ("p50", "p99", "p999")}
            if base
            else None,
            "lost": bridge[way]["lost"],
            "sent": bridge[way]["sent"],
        }
    out["bridge_cpu_s_per_call_s"] = bridge["bridge"]["cpu_s_per_call_s"]
    out["bridge_core_pct"] = bridge["cpu"]["bridge"]["core_pct"]
    out["rss_per_call_kib"] = bridge["bridge"]["rss_per_call_kib"]
    out["first_audio_p50_ms"] = bridge["first_audio_ms"]["p50"]
    out["clear_ms"] = {k: bridge["clear_ms"][k] for k in ("count", "p50", "p99")}
    out["clear_missed"] = bridge["clear_missed"]
    out["loadgen_core_pct"] = bridge["cpu"]["loadgen"]["core_pct"]
    out["engine_core_pct"] = bridge["cpu"]["engine"]["core_pct"]
    out["others_core_pct"] = bridge["cpu"]["others"]["core_pct"]
    others = [p["cpu"]["others"]["core_pct"] for p in (bridge, base) if p is not None]
    out["noisy"] = max(others) > quiet_limit
    out["loadgen_send_late_p99_ms"] = bridge["loadgen"]["send_late_ms"]["p99"]
    out["failures"] = bridge["loadgen"]["failures"] + bridge["loadgen"]["early_closes"]
    return out


def fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per N: added latency each way, loss, cost, and what else used the cores."""
    head = (
        f"{'N':>6} | {'up added p50':>12} {'p99':>6} {'p999':>6} | {'down added p50':>14} "
        f"{'p99':>6} {'p999':>6} | {'lost up/dn':>10} | {'CPU ms/call-s':>13} | "
        f"{'KiB/call':>8} | {'1st audio':>9} | {'clear p50':>9} {'p99':>6} | "
        f"{'gen late p99':>12} | {'core% bridge/eng/gen/other':>26}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        up = r["up"]["added_ms"] or r["up"]["through_ms"]
        dn = r["down"]["added_ms"] or r["down"]["through_ms"]
        cores = "/".join(
            f"{r[k]:.0f}"
            for k in ("bridge_core_pct", "engine_core_pct", "loadgen_core_pct", "others_core_pct")
        )
        lost = f"{r['up']['lost']}/{r['down']['lost']}"
        n = f"{r['n']}{'!' if r.get('noisy') else ''}"
        print(
            f"{n:>6} | {fmt(up['p50']):>12} {fmt(up['p99']):>6} {fmt(up['p999']):>6} | "
            f"{fmt(dn['p50']):>14} {fmt(dn['p99']):>6} {fmt(dn['p999']):>6} | {lost:>10} | "
            f"{1000 * r['bridge_cpu_s_per_call_s']:>13.2f} | {r['rss_per_call_kib']:>8.0f} | "
            f"{fmt(r['first_audio_p50_ms'], '.1f'):>9} | {fmt(r['clear_ms']['p50']):>9} "
            f"{fmt(r['clear_ms']['p99']):>6} | {fmt(r['loadgen_send_late_p99_ms']):>12} | "
            f"{cores:>26}"
        )
    added = rows and rows[0]["up"]["added_ms"] is not None
    print(
        "latency in ms: "
        + (
            "added = through-bridge percentile − baseline percentile (same load, no bridge)"
            if added
            else "through the bridge (no baseline run)"
        )
        + "; lost = frames stamped in the window never received;\n"
        "clear = engine speech_started sent → Twilio clear received; 1st audio = start sent → "
        "first agent media (p50);\ngen late = how late the load generator sent its own frames; "
        "! = other processes used the cores during the run (figures unreliable)."
    )


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
        "--sweep", action="store_true", help=f"grow N until p99 > {SWEEP_P99_LIMIT_MS} ms or loss"
    )
    p.add_argument("--max-calls", type=int, default=400, help=f"upper bound on N (≤ {MAX_CALLS})")
    p.add_argument("--duration", type=float, default=20.0, help="measurement window per N, s")
    p.add_argument("--workers", type=int, default=1, help="bridge worker processes")
    p.add_argument("--mode", choices=sorted(MODES), default="passthrough")
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
        help="give the bridge its own CPU(s) and the load processes the rest (both runs)",
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
    bridge: Bridge,
    report: dict[str, Any],
) -> dict[str, Any]:
    """Baseline (if asked) and through-bridge runs at one N, each after a quiet second."""
    base = None
    if args.baseline == "each":
        quiet = wait_quiet(args.wait_quiet, args.quiet_limit, [bridge.pid])
        base = run_point(args, workdir, n=n, engine_port=engine_port, bridge=None)
        base["machine_before"] = quiet
        report["points"].append(base)
    quiet = wait_quiet(args.wait_quiet, args.quiet_limit, [bridge.pid])
    through = run_point(args, workdir, n=n, engine_port=engine_port, bridge=bridge)
    through["machine_before"] = quiet
    report["points"].append(through)
    row = point_summary(through, base, args.quiet_limit)
    report["summary"].append(row)
    print(f"N={n}: done", file=sys.stderr, flush=True)
    return row


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every finally: children are stopped by pid


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if args.harness_cpus:
        os.sched_setaffinity(0, args.harness_cpus)  # the orchestrator keeps off the bridge's CPU
    calls = plan_calls(args)
    started = datetime.now(UTC)
    out = args.out or RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    report: dict[str, Any] = {
        "started": started.isoformat(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "method": {
            "latency": "receive time − stamp time in the 160-byte frame, CLOCK_MONOTONIC µs; "
            "up = load generator send → fake engine receive; down = fake engine send of the "
            "delta → load generator receive of the Twilio media message",
            "added": "through-bridge percentile − baseline percentile at the same N "
            "(baseline = the same load generator speaking Realtime straight to the fake engine)",
            "window": "frames stamped between ramp end + settle and + duration",
            "cpu": "utime+stime of the process tree from /proc over the window",
            "rss_per_call": "(peak VmRSS of the bridge tree during the window − VmRSS right "
            "after start-up) / N",
        },
        "points": [],
        "summary": [],
    }
    rows: list[dict[str, Any]] = []
    with workspace(args.keep_raw) as workdir:
        engine_port = free_port()
        bridge = Bridge(args, workdir, engine_port)
        try:
            health = bridge.wait_ready()
            report["bridge"] = {"cmd": bridge.cmd, "health": health}
            for n in calls:
                row = sweep_point(
                    args, workdir, n, engine_port=engine_port, bridge=bridge, report=report
                )
                rows.append(row)
                reason = stop_reason(row)
                if args.sweep and reason:
                    report["sweep_stopped"] = f"N={n}: {reason}"
                    break
        except BenchError as exc:
            report["error"] = str(exc)
            print(f"bench: {exc}", file=sys.stderr)
        finally:
            bridge.stop()
            report["bridge_log_tail"] = tail(bridge.log, 20)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    if rows:
        print_table(rows)
    print(f"results: {out}")
    if rows and not args.no_plot:
        from bench.plot import plot

        print(plot(out, out.with_suffix(".png")))
    for point in report["points"]:
        if "profile" in point:
            print(f"\nprofile N={point['n']}, samples holding the GIL, by area (own %):")
            for name, pct in point["profile"].get("by_area_pct", []):
                print(f"  {pct:5.1f}  {name}")
            print("top functions (own %):")
            for name, pct in point["profile"].get("own_pct", [])[:15]:
                print(f"  {pct:5.1f}  {name}")
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
