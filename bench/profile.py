"""``--profile``: py-spy the process under test during the window and summarise where it spent time.

Needs ``py-spy`` (``pip install py-spy``); without it the run goes on unprofiled.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.procs import tail


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
