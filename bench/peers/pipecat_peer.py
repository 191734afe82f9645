"""``--peer pipecat``: Pipecat's Twilio + OpenAI Realtime bot as a second target, in its own venv.

Pipecat is not a dependency of callbridge: it lives in ``bench/.venv-pipecat`` (gitignored),
created here from ``bench/requirements-pipecat.txt`` the first time ``python -m bench.run --peer
pipecat`` needs it, and again whenever that file changes (a hash of it is kept in the venv). The
bot itself is :mod:`bench.peers.pipecat_bot`, run with that venv's Python; it takes the same
fake engine, pacing and measurement as callbridge (see :mod:`bench.targets`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.procs import BenchError, tail
from bench.targets import ROOT, Server

VENV = ROOT / "bench" / ".venv-pipecat"
REQUIREMENTS = ROOT / "bench" / "requirements-pipecat.txt"
BOT = ROOT / "bench" / "peers" / "pipecat_bot.py"
STAMP = ".bench-requirements.sha256"
INSTALL_TIMEOUT_S = 1800


def python() -> Path:
    return VENV / "bin" / "python"


def requirements_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def dir_size_mib(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return round(total / 2**20, 1)


def ensure_venv(log: Path) -> dict[str, Any]:
    """Create or refresh the Pipecat venv if missing or stale; say what it is either way."""
    stamp = VENV / STAMP
    wanted = requirements_hash()
    if python().exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return {"path": str(VENV), "created": False, "version": pipecat_version()}
    print(
        f"bench: installing the Pipecat peer into {VENV.relative_to(ROOT)} from "
        f"{REQUIREMENTS.relative_to(ROOT)} (pipecat-ai and its dependencies, about 540 MB; "
        f"a minute or two; pip's output goes to {log}) …",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    with log.open("wb") as out:
        pip = [str(python()), "-m", "pip", "install", "--disable-pip-version-check"]
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(VENV)],
            [*pip, "-r", str(REQUIREMENTS)],
        ]
        for cmd in steps:
            try:
                done = subprocess.run(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=INSTALL_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise BenchError(f"installing the Pipecat venv timed out: {tail(log)}") from None
            if done.returncode:
                raise BenchError(f"{' '.join(cmd[:4])} failed: {tail(log)}")
    stamp.write_text(wanted + "\n")
    seconds = round(time.monotonic() - started, 1)
    info = {
        "path": str(VENV),
        "created": True,
        "install_s": seconds,
        "size_mib": dir_size_mib(VENV),
        "version": pipecat_version(),
    }
    print(
        f"bench: Pipecat {info['version']} installed in {seconds} s ({info['size_mib']} MiB)",
        file=sys.stderr,
        flush=True,
    )
    return info


def pipecat_version() -> str:
    done = subprocess.run(
        [str(python()), "-c", "import importlib.metadata as m; print(m.version('pipecat-ai'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() or "unknown"


class PipecatPeer(Server):
    """The Pipecat bot (:mod:`bench.peers.pipecat_bot`) under ``bench/.venv-pipecat``."""

    name = "pipecat"
    stamps = False  # Pipecat resamples to 24 kHz PCM in every mode

    def __init__(self, args: argparse.Namespace, workdir: Path, engine_port: int) -> None:
        super().__init__()
        self.log = workdir / "pipecat.log"
        # -P: the bot's own folder stays off sys.path (it would shadow nothing today; keep it so)
        cmd = [str(python()), "-P", str(BOT), "--port", str(self.port)]
        cmd += ["--engine-url", f"ws://127.0.0.1:{engine_port}/v1/realtime"]
        cmd += ["--log-level", args.bridge_log_level]
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env["PIPECAT_ALLOWED_ORIGINS"] = ""
        self.launch(cmd, env, args.bridge_cpus)
