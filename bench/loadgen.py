"""The load generator: N concurrent phone calls, each a Twilio Media Stream, paced like Twilio.

Run as its own process by :mod:`bench.run` (``python -m bench.loadgen --url … --calls N --t0 T``).
All times are ``CLOCK_MONOTONIC``; ``--t0`` is an absolute ``time.monotonic()`` value chosen by
the orchestrator, so every process agrees on the plan:

``t0`` ─ ramp (call *i* opens at ``t0 + i / ramp_rate``) ─ settle ─ **window** (``duration``) ─
tail ─ every call sends ``stop`` and closes. Only frames sent inside the window are measured.

Each call (target ``twilio``, through the bridge):

* sends ``connected``, ``start`` (with ``customParameters``), then one ``media`` every 20 ms on an
  absolute schedule ``first + n × 20 ms``; calls are spread evenly across the 20 ms period.
  String ``sequenceNumber`` (+1 per message), ``chunk`` (+1 per frame) and ``timestamp`` (ms).
  Each 160-byte payload carries an up stamp taken just before the send (``--stamps off``: plain
  μ-law silence, for targets that resample); every 50th frame from frame 50 on is a sync frame,
  a 1 kHz tone after the stamp's 16 bytes (:mod:`bench.marker`);
* plays agent audio like Twilio: 8 bytes per ms from a per-call queue; a ``mark`` is echoed once
  the audio queued before it has played (checked every 20 ms tick); ``clear`` empties the queue and
  echoes every pending mark at once;
* records every agent frame's down stamp with its receive time, every ``media`` payload as a
  chunk (cumulative 8 kHz samples, receive time) with the sync onsets in it (stamps blanked),
  every ``clear``, the time to the first agent audio, how late each of its own sends was (the
  generator's own health) and how many messages of each kind it got.

Target ``direct`` (the baseline) talks OpenAI Realtime straight to the fake engine with the same
frames and schedule, μ-law both ways and ``bench_call=N`` in its instructions:
``input_audio_buffer.append`` up; audio deltas down, split into 160-byte frames;
``speech_started`` stands for the ``clear``.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import json
import logging
import math
import os
import resource
import sys
import time
from array import array
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import marker
from bench.fake_engine import run_loop, sleep_until
from bench.stamp import DOWN, FRAME_BYTES, STAMP_BYTES, UP, Stamper, read_stamp

log = logging.getLogger("bench.loadgen")

FRAME_S = 0.020
MAX_CALLS = 2000
MAX_DURATION_S = 600.0
CONNECT_TIMEOUT_S = 10.0
CONNECTED = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
SYNC_ULAW = marker.ulaw_frame()
SILENCE_B64 = binascii.b2a_base64(b"\xff" * FRAME_BYTES, newline=False).decode("ascii")
SYNC_B64 = binascii.b2a_base64(SYNC_ULAW, newline=False).decode("ascii")


def up_payload(stamper: Stamper | None, n: int, t_us: int) -> str:
    """Frame ``n`` of a call in base64: stamped (or silence) with a sync tone every
    :data:`~bench.marker.SYNC_EVERY` frames after the stamp's 16 bytes."""
    sync = n > 0 and n % marker.SYNC_EVERY == 0
    if stamper is None:
        return SYNC_B64 if sync else SILENCE_B64
    payload = stamper.fill(n, t_us)
    if sync:
        payload = payload[:STAMP_BYTES] + SYNC_ULAW[STAMP_BYTES:]
    return binascii.b2a_base64(payload, newline=False).decode("ascii")


@dataclass(frozen=True, slots=True)
class Plan:
    """When everything happens, in ``time.monotonic()`` seconds."""

    calls: int
    t0: float
    duration_s: float
    ramp_rate: float = 50.0
    settle_s: float = 1.0
    tail_s: float = 2.0

    @property
    def ramp_end(self) -> float:
        return self.t0 + self.calls / self.ramp_rate

    @property
    def window_start(self) -> float:
        return self.ramp_end + self.settle_s

    @property
    def window_end(self) -> float:
        return self.window_start + self.duration_s

    @property
    def audio_end(self) -> float:
        return self.window_end + self.tail_s

    def open_at(self, index: int) -> float:
        return self.t0 + index / self.ramp_rate

    def phase(self, index: int) -> float:
        """Each call's offset in the 20 ms period: calls are spread evenly across it."""
        return (index % self.calls) * FRAME_S / self.calls

    def first_frame_at(self, index: int, ready: float) -> float:
        """The first slot of call ``index``'s 20 ms grid at or after ``ready``."""
        phase = self.t0 + self.phase(index)
        return phase + math.ceil(max(0.0, ready - phase) / FRAME_S) * FRAME_S


class Records:
    """Flat arrays of everything measured (microseconds), written once at the end."""

    def __init__(self) -> None:
        self.up_call = array("q")
        self.up_seq = array("q")
        self.up_sched_us = array("q")
        self.up_sent_us = array("q")
        self.dn_call = array("q")
        self.dn_conn = array("q")
        self.dn_seq = array("q")
        self.dn_sent_us = array("q")
        self.dn_recv_us = array("q")
        self.dnc_call = array("q")
        self.dnc_end = array("q")
        self.dnc_us = array("q")
        self.dno_call = array("q")
        self.dno_pos = array("q")
        self.dno_us = array("q")
        self.clear_call = array("q")
        self.clear_conn = array("q")
        self.clear_us = array("q")
        self.first_audio_ms: dict[int, float] = {}
        self.connect_ms: dict[int, float] = {}
        self.failures: list[str] = []
        self.early_closes: list[str] = []
        self.marks_echoed = 0
        self.unstamped_frames = 0
        self.odd_payloads = 0
        self.protocol_errors = 0
        self.messages: dict[str, int] = {}

    def save(self, path: Path, summary: dict[str, Any]) -> None:
        import numpy as np

        arrays = {
            name: np.frombuffer(value, dtype=np.int64) if len(value) else np.zeros(0, np.int64)
            for name, value in vars(self).items()
            if isinstance(value, array)
        }
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, allow_pickle=False, **arrays)
        tmp.replace(path)
        summary = {
            **summary,
            "calls_connected": len(self.connect_ms),
            "failures": len(self.failures),
            "failure_samples": self.failures[:10],
            "early_closes": len(self.early_closes),
            "early_close_samples": self.early_closes[:10],
            "frames_sent": len(self.up_seq),
            "frames_received": len(self.dn_seq),
            "marks_echoed": self.marks_echoed,
            "clears": len(self.clear_us),
            "unstamped_frames": self.unstamped_frames,
            "odd_payloads": self.odd_payloads,
            "protocol_errors": self.protocol_errors,
            "messages_received": self.messages,
            "sync_onsets_received": len(self.dno_pos),
            "first_audio_ms": [self.first_audio_ms.get(i) for i in range(summary["calls"])],
            "connect_ms": [self.connect_ms.get(i) for i in range(summary["calls"])],
        }
        path.with_suffix(".json").write_text(json.dumps(summary, indent=1))


def now_us() -> int:
    return time.monotonic_ns() // 1000


def sid(prefix: str, index: int, salt: int) -> str:
    """A Twilio-shaped id: two letters and 32 hex digits."""
    return f"{prefix}{salt:016x}{index:016x}"


class Call:
    """One call's state shared by both targets; subclasses speak the wire protocol."""

    def __init__(self, index: int, plan: Plan, rec: Records, *, stamps: bool = True) -> None:
        self.index = index
        self.plan = plan
        self.rec = rec
        self.stamper = Stamper(UP, index) if stamps else None
        self.detector = marker.OnsetDetector(8000)
        self.ws: Any = None
        self.conn: int | None = None
        self.started_at = 0.0
        self.closing = False

    # -- wire hooks ---------------------------------------------------------------------------

    async def open(self, url: str) -> None:
        raise NotImplementedError

    def media_message(self, n: int, b64: str, at_ms: int) -> str:
        raise NotImplementedError

    async def on_message(self, message: str | bytes) -> None:
        raise NotImplementedError

    async def tick(self, now: float) -> None:
        """Once per 20 ms, right after the frame is sent."""

    async def hang_up(self) -> None:
        """Say goodbye on the wire (Twilio ``stop``)."""

    # -- shared -------------------------------------------------------------------------------

    async def run(self, url: str) -> None:
        plan, rec = self.plan, self.rec
        await sleep_until(plan.open_at(self.index))
        opened = time.monotonic()
        try:
            await asyncio.wait_for(self.open(url), CONNECT_TIMEOUT_S)
        except Exception as exc:  # refused, timed out, rejected handshake
            rec.failures.append(f"call {self.index}: {type(exc).__name__}: {exc}")
            return
        self.started_at = time.monotonic()
        rec.connect_ms[self.index] = round((self.started_at - opened) * 1000, 3)
        reader = asyncio.create_task(self.read())
        try:
            await self.pace()
            if not reader.done():
                self.closing = True
                await self.hang_up()
                await asyncio.wait_for(self.ws.close(), 5.0)
        except Exception as exc:
            if not self.closing:
                rec.early_closes.append(f"call {self.index}: {type(exc).__name__}: {exc}")
        finally:
            self.closing = True
            if not reader.done():
                reader.cancel()
            with_timeout = asyncio.wait_for(asyncio.gather(reader, return_exceptions=True), 5.0)
            try:
                await with_timeout
            except TimeoutError:
                pass

    async def pace(self) -> None:
        """Send one stamped frame every 20 ms on an absolute schedule until the audio ends."""
        plan, rec, stamper, ws = self.plan, self.rec, self.stamper, self.ws
        first = plan.first_frame_at(self.index, time.monotonic())
        first_ms = round((first - self.started_at) * 1000)
        n = 0
        end = plan.audio_end
        while True:
            due = first + n * FRAME_S
            if due >= end or self.closing:
                return
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t = now_us()
            b64 = up_payload(stamper, n, t)
            await ws.send(self.media_message(n, b64, first_ms + n * 20))
            rec.up_call.append(self.index)
            rec.up_seq.append(n)
            rec.up_sched_us.append(int(due * 1_000_000))
            rec.up_sent_us.append(t)
            n += 1
            await self.tick(time.monotonic())

    async def read(self) -> None:
        try:
            async for message in self.ws:
                await self.on_message(message)
        except Exception as exc:
            if not self.closing:
                self.rec.early_closes.append(f"call {self.index}: {type(exc).__name__}: {exc}")
            return
        if not self.closing:
            close = getattr(self.ws, "close_rcvd", None)
            why = f"code {close.code} {close.reason}" if close is not None else "no close frame"
            self.rec.early_closes.append(f"call {self.index}: closed by peer: {why}")
            self.closing = True

    def record_audio(self, audio: bytes, t_recv: int) -> None:
        """Agent audio: byte stamps, then the chunk and its sync onsets (stamps blanked)."""
        rec = self.rec
        if len(audio) % FRAME_BYTES:
            rec.odd_payloads += 1
        if self.index not in rec.first_audio_ms:
            rec.first_audio_ms[self.index] = round((t_recv / 1_000_000 - self.started_at) * 1000, 3)
        samples = marker.ulaw_decode(audio)
        for offset in range(0, len(audio) - FRAME_BYTES + 1, FRAME_BYTES):
            stamp = read_stamp(audio, offset)
            if stamp is None or stamp.kind != DOWN:
                rec.unstamped_frames += 1
                continue
            samples[offset : offset + STAMP_BYTES] = 0
            self.conn = stamp.call
            rec.dn_call.append(self.index)
            rec.dn_conn.append(stamp.call)
            rec.dn_seq.append(stamp.seq)
            rec.dn_sent_us.append(stamp.t_us)
            rec.dn_recv_us.append(t_recv)
        for pos in self.detector.feed(samples):
            rec.dno_call.append(self.index)
            rec.dno_pos.append(pos)
            rec.dno_us.append(t_recv)
        rec.dnc_call.append(self.index)
        rec.dnc_end.append(self.detector.position)
        rec.dnc_us.append(t_recv)

    def record_clear(self, t_recv: int) -> None:
        self.rec.clear_call.append(self.index)
        self.rec.clear_conn.append(-1 if self.conn is None else self.conn)
        self.rec.clear_us.append(t_recv)


class TwilioCall(Call):
    """A Twilio Media Streams client, exact message shapes, simulated playback."""

    def __init__(
        self, index: int, plan: Plan, rec: Records, agent: str, salt: int, *, stamps: bool = True
    ) -> None:
        super().__init__(index, plan, rec, stamps=stamps)
        self.agent = agent
        self.stream_sid = sid("MZ", index, salt)
        self.call_sid = sid("CA", index, salt)
        self.account_sid = sid("AC", 0, salt)
        self.seq = 0
        self.play_end = 0.0
        self.marks: deque[tuple[float, str]] = deque()
        self._media_tail = '"},"streamSid":"' + self.stream_sid + '"}'

    def next_seq(self) -> str:
        self.seq += 1
        return str(self.seq)

    async def open(self, url: str) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            url, compression=None, open_timeout=CONNECT_TIMEOUT_S, ping_interval=None
        )
        await self.ws.send(CONNECTED)
        await self.ws.send(self.start_message())

    def start_message(self) -> str:
        start = {
            "event": "start",
            "sequenceNumber": self.next_seq(),
            "start": {
                "accountSid": self.account_sid,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": {"agent": self.agent, "bench_call": str(self.index)},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": self.stream_sid,
        }
        return orjson.dumps(start).decode()

    def media_message(self, n: int, b64: str, at_ms: int) -> str:
        return (
            '{"event":"media","sequenceNumber":"'
            + self.next_seq()
            + '","media":{"track":"inbound","chunk":"'
            + str(n + 1)
            + '","timestamp":"'
            + str(at_ms)
            + '","payload":"'
            + b64
            + self._media_tail
        )

    def mark_message(self, name: str) -> str:
        return (
            '{"event":"mark","sequenceNumber":"'
            + self.next_seq()
            + '","streamSid":"'
            + self.stream_sid
            + '","mark":{"name":'
            + orjson.dumps(name).decode()
            + "}}"
        )

    def stop_message(self) -> str:
        stop = {
            "event": "stop",
            "sequenceNumber": self.next_seq(),
            "streamSid": self.stream_sid,
            "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
        }
        return orjson.dumps(stop).decode()

    async def echo_mark(self, name: str) -> None:
        self.rec.marks_echoed += 1
        await self.ws.send(self.mark_message(name))

    async def on_message(self, message: str | bytes) -> None:
        t_recv = now_us()
        try:
            event = orjson.loads(message)
            kind = event["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.rec.protocol_errors += 1
            return
        messages = self.rec.messages
        messages[kind] = messages.get(kind, 0) + 1
        if kind == "media":
            try:
                audio = binascii.a2b_base64(event["media"]["payload"])
            except (KeyError, TypeError, binascii.Error):
                self.rec.protocol_errors += 1
                return
            self.record_audio(audio, t_recv)
            start = max(t_recv / 1_000_000, self.play_end)
            self.play_end = start + len(audio) / 8000.0
        elif kind == "mark":
            name = event.get("mark", {}).get("name")
            if isinstance(name, str):
                self.marks.append((self.play_end, name))
            else:
                self.rec.protocol_errors += 1
        elif kind == "clear":
            self.record_clear(t_recv)
            self.play_end = t_recv / 1_000_000
            while self.marks:
                await self.echo_mark(self.marks.popleft()[1])
        else:
            self.rec.protocol_errors += 1

    async def tick(self, now: float) -> None:
        marks = self.marks
        while marks and marks[0][0] <= now:
            await self.echo_mark(marks.popleft()[1])

    async def hang_up(self) -> None:
        await self.ws.send(self.stop_message())


class DirectCall(Call):
    """The baseline: the same frames straight to the fake engine as OpenAI Realtime events."""

    def session_update(self) -> str:
        """μ-law both ways; the call index in the instructions, as the bridges' prompts carry it."""
        session = {
            "type": "realtime",
            "model": "gpt-realtime",
            "output_modalities": ["audio"],
            "instructions": f"bench_call={self.index}",
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}},
                "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
            },
        }
        return orjson.dumps({"type": "session.update", "session": session}).decode()

    def __init__(self, index: int, plan: Plan, rec: Records, *, stamps: bool = True) -> None:
        super().__init__(index, plan, rec, stamps=stamps)
        self.greeted = False

    async def open(self, url: str) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            url,
            compression=None,
            open_timeout=CONNECT_TIMEOUT_S,
            ping_interval=None,
            additional_headers={"Authorization": "Bearer sk-bench"},
            max_size=16 * 1024 * 1024,
        )
        await self.ws.send(self.session_update())

    def media_message(self, n: int, b64: str, at_ms: int) -> str:
        return '{"type":"input_audio_buffer.append","audio":"' + b64 + '"}'

    async def on_message(self, message: str | bytes) -> None:
        t_recv = now_us()
        try:
            event = orjson.loads(message)
            kind = event["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.rec.protocol_errors += 1
            return
        if kind == "response.output_audio.delta":
            try:
                audio = binascii.a2b_base64(event["delta"])
            except (KeyError, TypeError, binascii.Error):
                self.rec.protocol_errors += 1
                return
            self.record_audio(audio, t_recv)
        elif kind == "input_audio_buffer.speech_started":
            self.record_clear(t_recv)
        elif kind == "session.updated" and not self.greeted:
            self.greeted = True
            await self.ws.send('{"type":"response.create"}')
        elif kind == "error":
            self.rec.protocol_errors += 1


async def run(args: argparse.Namespace, plan: Plan) -> Records:
    rec = Records()
    salt = int.from_bytes(os.urandom(8), "big")
    stamps = args.stamps == "on"
    calls: list[Call] = [
        TwilioCall(i, plan, rec, args.agent, salt, stamps=stamps)
        if args.target == "twilio"
        else DirectCall(i, plan, rec, stamps=stamps)
        for i in range(plan.calls)
    ]
    tasks = [asyncio.create_task(call.run(args.url)) for call in calls]
    deadline = plan.audio_end + 30.0 - time.monotonic()
    done, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline))
    for task in pending:
        task.cancel()
    if pending:
        rec.failures.append(f"{len(pending)} calls did not finish within 30 s of the end")
        await asyncio.wait(pending, timeout=5.0)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            rec.failures.append(f"call task crashed: {task.exception()!r}")
    return rec


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Plan]:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="ws://127.0.0.1:P/twilio/media or the engine URL")
    p.add_argument("--target", choices=("twilio", "direct"), default="twilio")
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--t0", type=float, help="time.monotonic() of the first call (default: now+0.5)")
    p.add_argument("--duration", type=float, default=20.0, help="measurement window, seconds")
    p.add_argument("--ramp-rate", type=float, default=50.0, help="calls opened per second")
    p.add_argument("--settle", type=float, default=1.0, help="seconds between ramp and window")
    p.add_argument("--tail", type=float, default=2.0, help="seconds of audio after the window")
    p.add_argument("--agent", default="default", help="customParameters.agent")
    p.add_argument(
        "--stamps",
        choices=("on", "off"),
        default="on",
        help="byte stamps in caller frames (off when the target resamples: they would be noise)",
    )
    p.add_argument("--out", type=Path, required=True, help="records (.npz); summary beside it")
    args = p.parse_args(argv)
    if not args.url.startswith(("ws://127.0.0.1", "ws://localhost", "ws://[::1]")):
        p.error("the bench stays on loopback")
    if not 1 <= args.calls <= MAX_CALLS:
        p.error(f"--calls must be 1..{MAX_CALLS}")
    if not 1 <= args.duration <= MAX_DURATION_S:
        p.error(f"--duration must be 1..{MAX_DURATION_S} s")
    if not 1 <= args.ramp_rate <= 1000 or not 0 <= args.settle <= 60 or not 0 <= args.tail <= 60:
        p.error("--ramp-rate 1..1000, --settle and --tail 0..60 s")
    t0 = args.t0 if args.t0 is not None else time.monotonic() + 0.5
    plan = Plan(args.calls, t0, args.duration, args.ramp_rate, args.settle, args.tail)
    return args, plan


def main(argv: list[str] | None = None) -> int:
    args, plan = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="loadgen %(levelname)s %(message)s")
    rec = run_loop(run(args, plan))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rec.save(
        args.out,
        {
            "target": args.target,
            "url": args.url,
            "calls": plan.calls,
            "plan": asdict(plan),
            "window_start_us": int(plan.window_start * 1_000_000),
            "window_end_us": int(plan.window_end * 1_000_000),
            "cpu_user_s": usage.ru_utime,
            "cpu_system_s": usage.ru_stime,
            "max_rss_kib": usage.ru_maxrss,
            "pid": os.getpid(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
