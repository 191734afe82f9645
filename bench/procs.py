"""Processes of the bench: CPU time and memory from ``/proc``, ports, starting and stopping.

Every child is started by the orchestrator and stopped by its pid (SIGTERM, then SIGKILL); CPU
time is ``utime + stime`` of a process tree, memory its summed ``VmRSS``. No third-party code.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The bench could not run (a process did not start, a run did not finish)."""


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


# -- sampling a window -----------------------------------------------------------------------


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
