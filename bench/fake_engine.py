"""A fake OpenAI Realtime (GA) server for load tests: cheap, scripted, and it times every frame.

Run as its own process (``python -m bench.fake_engine --port P --report out.npz``). It speaks just
enough of the GA protocol for a bridge to hold a real conversation with it:

* ``session.created`` on connect, ``session.updated`` for each ``session.update``;
* on ``response.create`` (the bridge's greeting) and then every ``--turn-every-ms`` a scripted
  *turn*: the user "speaks" (``speech_started`` … ``speech_stopped``, ``committed``, the user item
  and its transcript), then the agent answers: ``response.created``, output item and content part,
  ``response.output_audio.delta`` of ``--delta-ms`` each, paced ``--speed`` times faster than
  real time, a transcript delta every few audio deltas, then the ``.done`` events and
  ``response.done``;
* every ``--barge-every``-th answer the user barges in ``--barge-at-ms`` after the answer began:
  ``speech_started`` while the caller still hears it (the bridge must send Twilio ``clear``), the
  answer is cancelled if still streaming (``response.done`` status ``cancelled``);
* ``conversation.item.truncate`` → ``conversation.item.truncated``; ``response.cancel`` → cancel;
  ``conversation.item.create`` → ``conversation.item.added`` and ``.done`` (Pipecat sends its
  context as items); ``input_audio_buffer.clear`` → ``cleared``.

Audio formats follow the session like the real server's: 24 kHz PCM until a ``session.update``
names ``audio/pcmu`` (or ``audio/pcma``), per direction. Caller audio is timed two ways:
μ-law frames by their byte stamp (:mod:`bench.stamp`), and every append, whatever its format, as
a chunk (cumulative samples, receive time) plus the sync-tone onsets in it (:mod:`bench.marker`;
:mod:`bench.align` turns those into per-frame times). Agent audio: μ-law deltas carry a down stamp
in every 160-byte slice (the time the delta was sent); in every format the first frame of each
answer is a sync frame. The call a connection carries comes from the up stamps or, when the
audio is resampled, from ``bench_call=N`` in the session's instructions.

On SIGTERM/SIGINT the engine writes its records (numpy ``.npz``) and a JSON summary (its CPU time,
formats, the client events it got by type with the first of each) and exits. Event builders
(:mod:`bench.engine_events`) are pure: no I/O, no clock.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import contextlib
import json
import logging
import os
import resource
import signal
import sys
import time
from array import array
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson

from bench import marker
from bench.engine_events import SESSION_DEFAULTS, Events, bench_call, merge_session, wire_format
from bench.stamp import DOWN, FRAME_BYTES, MAGIC, STAMP_BYTES, UP, Stamper, read_stamp

log = logging.getLogger("bench.fake_engine")

APPEND_PREFIX = '{"type":"input_audio_buffer.append","audio":"'
MAX_SECONDS = 3600.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Script:
    """What every connection's fake agent does, in milliseconds."""

    answer_ms: int = 2400
    delta_ms: int = 100
    speed: float = 4.0
    turn_every_ms: int = 4000
    user_ms: int = 800
    barge_every: int = 2
    barge_at_ms: int = 1000
    transcript_every: int = 4
    think_ms: int = 0

    def check(self) -> None:
        if self.delta_ms % 20 or not 20 <= self.delta_ms <= 2000:
            raise ValueError("delta_ms must be a multiple of 20 between 20 and 2000")
        if self.answer_ms % self.delta_ms or self.answer_ms <= 0:
            raise ValueError("answer_ms must be a positive multiple of delta_ms")
        if not 0.5 <= self.speed <= 100:
            raise ValueError("speed must be between 0.5 and 100")
        # A user turn's speech_started must come after the caller has heard the previous answer
        # (else it is an unplanned barge-in): leave 500 ms for latency and playback slack.
        if self.turn_every_ms < self.answer_ms + self.user_ms + self.think_ms + 500:
            raise ValueError("turn_every_ms must exceed answer_ms + user_ms + think_ms + 500")
        if self.barge_every < 0 or (self.barge_every and self.barge_at_ms <= 0):
            raise ValueError("barge_every must be >= 0 and barge_at_ms > 0")

    @property
    def frames_per_delta(self) -> int:
        return self.delta_ms // 20

    @property
    def deltas(self) -> int:
        return self.answer_ms // self.delta_ms

    def is_barge_turn(self, turn: int) -> bool:
        """Turn 0 is the greeting; with ``barge_every`` = 2 turns 1, 3, 5 … are interrupted."""
        return self.barge_every > 0 and turn % self.barge_every == 1 % self.barge_every


# -- the server --------------------------------------------------------------------------------


class Records:
    """Everything measured, as flat arrays (cheap appends, written once at the end).

    ``up_*``: caller frames read by their byte stamp (μ-law input only). ``upc_*``: every
    append as a chunk (connection, cumulative 24 kHz samples after it, receive time) and
    ``upo_*`` the sync onsets found in them (:mod:`bench.marker`), whatever the format.
    ``dn_*``: every frame sent; ``ans_*``: one row per agent answer (its first frame number,
    frames sent, first delta's send time, whether the user barged in on it).
    """

    def __init__(self) -> None:
        self.up_call = array("q")
        self.up_seq = array("q")
        self.up_sent_us = array("q")
        self.up_recv_us = array("q")
        self.upc_conn = array("q")
        self.upc_end = array("q")
        self.upc_us = array("q")
        self.upo_conn = array("q")
        self.upo_pos = array("q")
        self.upo_us = array("q")
        self.dn_conn = array("q")
        self.dn_seq = array("q")
        self.dn_sent_us = array("q")
        self.ans_conn = array("q")
        self.ans_seq0 = array("q")
        self.ans_frames = array("q")
        self.ans_us = array("q")
        self.ans_barged = array("q")
        self.barge_conn = array("q")
        self.barge_us = array("q")
        self.conn_call: dict[int, int] = {}
        self.conn_formats: dict[int, str] = {}
        self.client_events: dict[str, int] = {}
        self.client_samples: dict[str, Any] = {}
        self.unstamped_frames = 0
        self.odd_appends = 0
        self.connections = 0
        self.errors_sent = 0

    def client_event(self, kind: str, event: Any) -> None:
        """Count a client event by type; keep the first of each type (audio elided)."""
        self.client_events[kind] = self.client_events.get(kind, 0) + 1
        if kind not in self.client_samples and isinstance(event, dict):
            sample = dict(event)
            if isinstance(sample.get("audio"), str):
                sample["audio"] = f"<{len(sample['audio'])} base64 chars>"
            self.client_samples[kind] = sample

    def save(self, path: Path, extra: dict[str, Any]) -> None:
        import numpy as np

        arrays = {
            name: np.frombuffer(value, dtype=np.int64) if len(value) else np.zeros(0, np.int64)
            for name, value in vars(self).items()
            if isinstance(value, array)
        }
        conns = sorted(self.conn_call)
        arrays["map_conn"] = np.asarray(conns, dtype=np.int64)
        arrays["map_call"] = np.asarray([self.conn_call[c] for c in conns], dtype=np.int64)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, allow_pickle=False, **arrays)
        tmp.replace(path)
        formats: dict[str, int] = {}
        for fmt in self.conn_formats.values():
            formats[fmt] = formats.get(fmt, 0) + 1
        summary = {
            "unstamped_frames": self.unstamped_frames,
            "odd_appends": self.odd_appends,
            "connections": self.connections,
            "errors_sent": self.errors_sent,
            "frames_received": len(self.up_seq),
            "appends_received": len(self.upc_end),
            "sync_onsets_received": len(self.upo_pos),
            "frames_sent": len(self.dn_seq),
            "answers": len(self.ans_us),
            "barge_ins": len(self.barge_us),
            "formats_in_out": formats,
            "client_events": {**self.client_events, "input_audio_buffer.append": len(self.upc_end)},
            "client_event_samples": self.client_samples,
            **extra,
        }
        path.with_suffix(".json").write_text(json.dumps(summary, indent=1))


def now_us() -> int:
    return time.monotonic_ns() // 1000


class Connection:
    """One bridge (or baseline client) connection: reads client events, runs the script."""

    def __init__(self, ws: Any, conn_id: int, script: Script, records: Records) -> None:
        self.ws = ws
        self.conn_id = conn_id
        self.script = script
        self.rec = records
        self.events = Events(conn_id)
        self.session: dict[str, Any] = dict(SESSION_DEFAULTS)
        self.in_format = self.out_format = "pcm"
        self.down_seq = 0
        self.stamper = Stamper(DOWN, conn_id, script.frames_per_delta)
        self.caller_ms = 0
        self.up_base24 = 0  # 24 kHz samples received before the current detector started
        self.detector = marker.OnsetDetector(24000)
        self.greeting = asyncio.Event()
        self.answering: asyncio.Task[None] | None = None
        self.cancel_requested = False
        self.agent_item: str | None = None
        self.answer_row: int | None = None
        self.call_index: int | None = None

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def run(self) -> None:
        await self.send(self.events.session("session.created", self.session))
        script = asyncio.create_task(self.run_script())
        try:
            async for message in self.ws:
                await self.on_message(message)
        except Exception as exc:  # a peer going away mid-message is normal under load
            log.debug("connection %d: %r", self.conn_id, exc)
        finally:
            script.cancel()
            if self.answering is not None:
                self.answering.cancel()

    # -- client events ------------------------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str) and message.startswith(APPEND_PREFIX):
            end = message.find('"', len(APPEND_PREFIX))
            if end > 0 and message[end:] == '"}':
                self.on_audio(message[len(APPEND_PREFIX) : end])
                return
        try:
            event = orjson.loads(message)
            kind = event["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self.error("invalid_json", "could not parse the client event")
            return
        self.rec.client_event(kind, event)
        if kind == "input_audio_buffer.append":
            self.on_audio(event.get("audio", ""))
        elif kind == "session.update":
            self.on_session(event.get("session") or {})
            await self.send(self.events.session("session.updated", self.session))
        elif kind == "response.create":
            if self.answering is not None and not self.answering.done():
                await self.error(
                    "conversation_already_has_active_response",
                    "a response is in progress",
                    event.get("event_id"),
                )
            else:
                self.greeting.set()
                self.answering = asyncio.create_task(self.answer(0, now_us()))
        elif kind == "response.cancel":
            self.cancel_requested = True
        elif kind == "conversation.item.truncate":
            await self.send(
                self.events.truncated(str(event.get("item_id")), int(event.get("audio_end_ms", 0)))
            )
        elif kind == "conversation.item.create":
            for text in self.events.item_created(event.get("item")):
                await self.send(text)
        elif kind == "input_audio_buffer.clear":
            await self.send(self.events.cleared())
        elif kind not in (
            "input_audio_buffer.commit",
            "conversation.item.delete",
            "conversation.item.retrieve",
        ):
            await self.error("unknown_event", f"unknown client event {kind!r}")

    def on_session(self, update: dict[str, Any]) -> None:
        """Apply a ``session.update``: formats, and the call index if the prompt carries one."""
        self.session = merge_session(self.session, update)
        in_format = wire_format(self.session, "input")
        if in_format != self.in_format:
            self.up_base24 += self.detector.position * (3 if self.in_format != "pcm" else 1)
            self.detector = marker.OnsetDetector(24000 if in_format == "pcm" else 8000)
        self.in_format, self.out_format = in_format, wire_format(self.session, "output")
        self.rec.conn_formats[self.conn_id] = f"{self.in_format}/{self.out_format}"
        call = bench_call(self.session)
        if call is not None and self.call_index is None:
            self.call_index = call
            self.rec.conn_call[self.conn_id] = call

    async def error(self, code: str, message: str, client_event_id: str | None = None) -> None:
        self.rec.errors_sent += 1
        await self.send(self.events.error(code, message, client_event_id))

    def on_audio(self, b64: str) -> None:
        """One append: byte stamps (μ-law), then chunk and sync-onset records (any format)."""
        t_recv = now_us()
        try:
            audio = binascii.a2b_base64(b64)
        except binascii.Error:
            self.rec.odd_appends += 1
            return
        rec = self.rec
        if self.in_format == "pcm":
            if len(audio) % 2:
                rec.odd_appends += 1
                audio = audio[:-1]
            self.caller_ms += len(audio) // 48
            samples = np.frombuffer(audio, dtype="<i2")
            scale = 1
        else:
            if len(audio) % FRAME_BYTES:
                rec.odd_appends += 1
            self.caller_ms += len(audio) // 8
            samples = marker.ulaw_decode(audio)
            scale = 3
            self.read_stamps(audio, samples, t_recv)
        conn = self.conn_id
        for pos in self.detector.feed(samples):
            rec.upo_conn.append(conn)
            rec.upo_pos.append(self.up_base24 + pos * scale)
            rec.upo_us.append(t_recv)
        rec.upc_conn.append(conn)
        rec.upc_end.append(self.up_base24 + self.detector.position * scale)
        rec.upc_us.append(t_recv)

    def read_stamps(self, audio: bytes, samples: npt.NDArray[np.int16], t_recv: int) -> None:
        """Record every stamped frame and blank its stamp in ``samples`` for the onset detector."""
        rec = self.rec
        for offset in range(0, len(audio) - FRAME_BYTES + 1, FRAME_BYTES):
            if audio[offset : offset + 3] != MAGIC:
                rec.unstamped_frames += 1
                continue
            samples[offset : offset + STAMP_BYTES] = 0
            stamp = read_stamp(audio, offset)
            if stamp is None or stamp.kind != UP:
                rec.unstamped_frames += 1
                continue
            if self.call_index is None:
                self.call_index = stamp.call
                rec.conn_call[self.conn_id] = stamp.call
            rec.up_call.append(stamp.call)
            rec.up_seq.append(stamp.seq)
            rec.up_sent_us.append(stamp.t_us)
            rec.up_recv_us.append(t_recv)

    # -- the script ---------------------------------------------------------------------------

    async def run_script(self) -> None:
        """Greeting on ``response.create`` (or after 2 s), then a user turn every period."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.greeting.wait(), 2.0)
        base = time.monotonic()
        period = self.script.turn_every_ms / 1000.0
        turn = 1
        while True:
            answer_at = base + turn * period
            await sleep_until(answer_at - self.script.user_ms / 1000.0)
            user_item = self.events.next_id("item")
            await self.send(self.events.speech_started(self.caller_ms, user_item))
            await sleep_until(answer_at)
            await self.user_turn_end(user_item)
            if self.answering is not None and not self.answering.done():
                self.answering.cancel()
            self.answering = asyncio.create_task(self.answer(turn, now_us()))
            turn += 1

    async def user_turn_end(self, user_item: str) -> None:
        await self.send(self.events.speech_stopped(self.caller_ms, user_item))
        await self.send(self.events.committed(user_item))
        await self.send(self.events.user_item(user_item))
        await self.send(self.events.user_transcript(user_item, "I have a question."))

    async def answer(self, turn: int, start_us: int) -> None:
        """One agent answer, streamed faster than real time; maybe interrupted by the user."""
        s, ev = self.script, self.events
        if s.think_ms:
            await asyncio.sleep(s.think_ms / 1000.0)
        start = time.monotonic()
        response_id, item_id = ev.next_id("resp"), ev.next_id("item")
        self.agent_item = item_id
        self.cancel_requested = False
        barge_at = start + s.barge_at_ms / 1000.0 if s.is_barge_turn(turn) else None
        await self.send(ev.response("response.created", response_id, "in_progress"))
        await self.send(
            ev.output_item("response.output_item.added", response_id, item_id, "in_progress")
        )
        await self.send(ev.content_part("response.content_part.added", response_id, item_id, ""))
        prefix = ev.audio_delta_prefix(response_id, item_id)
        step = s.delta_ms / 1000.0 / s.speed
        fpd = s.frames_per_delta
        words: list[str] = []
        status, reason = "completed", None
        for j in range(s.deltas):
            await sleep_until(start + j * step)
            if barge_at is not None and time.monotonic() >= barge_at:
                await self.barge_in()
                barge_at = None
                status, reason = "cancelled", "turn_detected"
                break
            if self.cancel_requested:
                status, reason = "cancelled", "client_cancelled"
                break
            t = now_us()
            await self.send(ev.audio_delta_b64(prefix, self.delta_b64(j == 0, t)))
            self.record_delta(j == 0, t, fpd)
            if s.transcript_every and j % s.transcript_every == 0:
                words.append(f"word{j}")
                await self.send(
                    ev.item_event(
                        "response.output_audio_transcript.delta",
                        response_id,
                        item_id,
                        delta=f" word{j}",
                    )
                )
        transcript = " ".join(words)
        await self.send(ev.item_event("response.output_audio.done", response_id, item_id))
        await self.send(
            ev.item_event(
                "response.output_audio_transcript.done", response_id, item_id, transcript=transcript
            )
        )
        await self.send(
            ev.content_part("response.content_part.done", response_id, item_id, transcript)
        )
        item_status = "completed" if status == "completed" else "incomplete"
        await self.send(
            ev.output_item("response.output_item.done", response_id, item_id, item_status)
        )
        await self.send(ev.response("response.done", response_id, status, reason))
        if barge_at is not None:  # the answer was fully sent; the caller is still hearing it
            await sleep_until(barge_at)
            await self.barge_in()

    def record_delta(self, first: bool, t_us: int, frames: int) -> None:
        rec = self.rec
        if first:
            self.answer_row = len(rec.ans_us)
            rec.ans_conn.append(self.conn_id)
            rec.ans_seq0.append(self.down_seq)
            rec.ans_frames.append(0)
            rec.ans_us.append(t_us)
            rec.ans_barged.append(0)
        if self.answer_row is not None:
            rec.ans_frames[self.answer_row] += frames
        for k in range(frames):
            rec.dn_conn.append(self.conn_id)
            rec.dn_seq.append(self.down_seq + k)
            rec.dn_sent_us.append(t_us)
        self.down_seq += frames

    def delta_b64(self, first: bool, t_us: int) -> str:
        """One delta's audio in the session's output format; the answer's first frame is a sync.

        μ-law (and A-law, unused here) carries a byte stamp in every frame, with the sync tone
        after the first frame's stamp; 24 kHz PCM carries no stamp (nothing could read it after
        resampling) and is built once per script.
        """
        if self.out_format == "pcm":
            return PCM_DELTAS[(self.script.frames_per_delta, first)]
        audio = self.stamper.fill(self.down_seq, t_us)
        if first:
            audio = audio[:STAMP_BYTES] + SYNC_ULAW[STAMP_BYTES:] + audio[FRAME_BYTES:]
        return binascii.b2a_base64(audio, newline=False).decode("ascii")

    async def barge_in(self) -> None:
        """The user talks over the agent: speech_started (timed), then stopped and committed."""
        if self.answer_row is not None:
            self.rec.ans_barged[self.answer_row] = 1
        item = self.events.next_id("item")
        text = self.events.speech_started(self.caller_ms, item)
        t = now_us()
        await self.send(text)
        self.rec.barge_conn.append(self.conn_id)
        self.rec.barge_us.append(t)
        asyncio.get_running_loop().call_later(
            0.3, lambda: asyncio.ensure_future(self._barge_end(item))
        )

    async def _barge_end(self, item: str) -> None:
        with contextlib.suppress(Exception):
            await self.user_turn_end(item)


SYNC_ULAW = marker.ulaw_frame()


class _PcmDeltas(dict[tuple[int, bool], str]):
    """(frames per delta, starts an answer) → the 24 kHz PCM delta in base64, built on first use."""

    def __missing__(self, key: tuple[int, bool]) -> str:
        frames, first = key
        silence = bytes(960)
        audio = (marker.pcm_frame() if first else silence) + silence * (frames - 1)
        self[key] = value = binascii.b2a_base64(audio, newline=False).decode("ascii")
        return value


PCM_DELTAS = _PcmDeltas()


async def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# -- process entry -----------------------------------------------------------------------------


async def serve(args: argparse.Namespace, script: Script) -> Records:
    from websockets.asyncio.server import serve as ws_serve

    records = Records()
    connections: set[asyncio.Task[None]] = set()

    def check_request(connection: Any, request: Any) -> Any:
        if not request.path.startswith("/v1/realtime"):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "missing bearer token\n")
        if "OpenAI-Beta" in request.headers:
            return connection.respond(HTTPStatus.BAD_REQUEST, "beta protocol retired\n")
        return None

    async def handler(ws: Any) -> None:
        records.connections += 1
        conn = Connection(ws, records.connections & 0xFFFF, script, records)
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await conn.run()
        finally:
            connections.discard(task)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with ws_serve(
        handler,
        args.host,
        args.port,
        compression=None,
        process_request=check_request,
        max_size=16 * 1024 * 1024,
        ping_interval=None,
        max_queue=256,
    ):
        print(f"READY {args.port}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.max_seconds)
    return records


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Script]:
    p = argparse.ArgumentParser(
        prog="python -m bench.fake_engine", description=__doc__.split("\n")[0]
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--report", type=Path, required=True, help="records (.npz); summary beside it")
    p.add_argument("--max-seconds", type=float, default=600.0, help="exit after this long")
    defaults = Script()
    for name, value in asdict(defaults).items():
        p.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    args = p.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        p.error("the bench stays on loopback")
    args.max_seconds = min(args.max_seconds, MAX_SECONDS)
    script = Script(**{name: getattr(args, name) for name in asdict(defaults)})
    try:
        script.check()
    except ValueError as exc:
        p.error(str(exc))
    return args, script


def main(argv: list[str] | None = None) -> int:
    args, script = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="fake_engine %(levelname)s %(message)s")
    records = run_loop(serve(args, script))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    records.save(
        args.report,
        {
            "cpu_user_s": usage.ru_utime,
            "cpu_system_s": usage.ru_stime,
            "max_rss_kib": usage.ru_maxrss,
            "pid": os.getpid(),
            "script": asdict(script),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
