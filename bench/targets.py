"""What the load generator calls: callbridge (``callbridge serve``) or a peer, in a mode.

A **target** is a server process speaking Twilio Media Streams on ``/twilio/media`` and
answering ``GET /healthz`` with ``{"status": "ok", "live_calls": n}``; the orchestrator starts it
once, pins it to the bridge's CPUs and runs every N against it. :class:`Bridge` is callbridge;
:class:`bench.peers.pipecat_peer.PipecatPeer` is Pipecat's Twilio + OpenAI Realtime bot.

A **mode** is what callbridge is asked to do with the audio:

* ``passthrough``: the repo's ``default`` agent, ``audio/pcmu`` both ways: the bytes the caller
  sends are the bytes the engine hears, so byte stamps survive;
* ``transcode``: a copy of that agent with ``audio_format = "pcm16/24000"`` in a temporary
  agents directory (``CALLBRIDGE_AGENTS_DIR``/``CALLBRIDGE_PROMPTS_DIR``): the bridge resamples
  μ-law 8 kHz ↔ PCM16 24 kHz, stamps are lost, sync markers time the frames. Its prompt ends with
  ``bench_call={{bench_call}}`` (the load generator's ``customParameters``) so the engine can
  still tell the calls apart.

Pipecat has no passthrough: its Realtime service always asks for 24 kHz PCM and resamples itself,
in both modes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import BenchError, free_port, http_json, pin, rss_kib, stop_process, tail

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Mode:
    """How a mode sets callbridge up; ``audio_format`` None keeps the carrier's μ-law."""

    name: str
    agent: str = "default"
    audio_format: str | None = None

    @property
    def stamps(self) -> bool:
        """Do byte stamps survive callbridge in this mode?"""
        return self.audio_format is None

    def bridge_env(self, workdir: Path) -> dict[str, str]:
        """Environment that points callbridge at this mode's agent (writes it under workdir)."""
        if self.audio_format is None:
            return {}
        agents, prompts = workdir / "agents", workdir / "prompts"
        agents.mkdir(exist_ok=True)
        prompts.mkdir(exist_ok=True)
        toml = (ROOT / "agents" / "default.toml").read_text()
        (agents / "default.toml").write_text(force_format(toml, self.audio_format))
        prompt = (ROOT / "prompts" / "default.md").read_text()
        (prompts / "default.md").write_text(prompt.rstrip("\n") + "\n\nbench_call={{bench_call}}\n")
        return {"CALLBRIDGE_AGENTS_DIR": str(agents), "CALLBRIDGE_PROMPTS_DIR": str(prompts)}


def force_format(toml: str, audio_format: str) -> str:
    """An agent definition with ``audio_format`` set, as a top-level key before any table."""
    lines = [ln for ln in toml.splitlines() if not ln.startswith("audio_format")]
    first_table = next((i for i, ln in enumerate(lines) if ln.startswith("[")), len(lines))
    lines.insert(first_table, f'audio_format = "{audio_format}"')
    return "\n".join(lines) + "\n"


MODES = {
    "passthrough": Mode("passthrough"),
    "transcode": Mode("transcode", audio_format="pcm16/24000"),
}


class Server:
    """A target process: started by a subclass, health-checked, stopped by pid."""

    name = "server"
    stamps = False
    """Do byte stamps survive this target (μ-law passthrough)?"""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes]
        self.pid = 0
        self.log = Path()
        self.cmd: list[str] = []
        self.rss_startup = 0

    def launch(self, cmd: list[str], env: dict[str, str], cpus: list[int] | None) -> None:
        self.cmd = cmd
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        pin(self.proc, cpus)
        self.pid = self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/twilio/media"

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with code {self.proc.returncode}:\n{tail(self.log)}"
                )
            with contextlib.suppress(OSError, ValueError):
                health = http_json(f"http://127.0.0.1:{self.port}/healthz")
                if health.get("status") == "ok":
                    self.rss_startup = rss_kib(self.pid)
                    return dict(health)
            time.sleep(0.2)
        raise BenchError(
            f"{self.name} did not answer /healthz within {timeout} s:\n{tail(self.log)}"
        )

    def wait_idle(self, timeout: float = 30.0) -> int:
        """Wait until the target carries no call; return the live count seen last."""
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
        if self.pid:
            stop_process(self.proc, signal.SIGINT, wait=15)


class Bridge(Server):
    """The ``callbridge serve`` subprocess, in the run's mode."""

    name = "callbridge"

    def __init__(self, args: argparse.Namespace, workdir: Path, engine_port: int) -> None:
        super().__init__()
        mode = MODES[args.mode]
        self.stamps = mode.stamps
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
                # the OpenAI receptionist, not the offline demo (whose recogniser process
                # would be warmed up at start and counted in the bridge's memory)
                "CALLBRIDGE_DEFAULT_AGENT": "default",
            }
        )
        env.update(mode.bridge_env(workdir))
        env.update(dict(kv.split("=", 1) for kv in args.bridge_env))
        self.launch(cmd, env, args.bridge_cpus)
