"""A simulated caller: the carrier side of a call, for test calls and end-to-end tests.

:class:`SimulatedCaller` drives one carrier's protocol — a
:class:`~bridge.simulate.carriers.base.CallerWire` — on the real clock: the wire's opening frames,
caller frames on an absolute 20 ms schedule (line silence when nothing is queued), DTMF, the
wire's hang-up. What the bridge sends is validated strictly by the wire (problems land in
``caller.violations``) and played through a :class:`~bridge.simulate.playback.PlaybackBuffer`,
so mark answers leave when the audio before them has played, and a clear answers every pending
mark at once. A carrier without marks (AudioSocket) plays audio as it arrives: the bridge paces.

:class:`TwilioCaller` is the Twilio ``<Connect><Stream>`` caller (digest §1). This module is the
only place in the simulator that reads the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import NamedTuple

import numpy as np
from websockets.exceptions import ConnectionClosed, WebSocketException

from bridge.audio.g711 import ULAW_SILENCE_BYTE, ulaw_to_pcm16
from bridge.errors import CallbridgeError, CarrierProtocolError
from bridge.simulate.carriers.base import (
    BridgeClear,
    BridgeHangup,
    BridgeMark,
    BridgeMedia,
    CallerWire,
    Frame,
)
from bridge.simulate.carriers.twilio import TwilioWire
from bridge.simulate.playback import MarkReached, PlaybackBuffer, TurnTimer
from bridge.simulate.transport import Transport, open_transport
from bridge.simulate.wire import DTMF_DIGITS, FRAME_BYTES

__all__ = [
    "ClearRecord", "SimulatedCallError", "SimulatedCaller", "TimelineEvent", "TwilioCaller",
    "frame_rms",
]  # fmt: skip

FRAME_S = 0.020
SILENCE_FRAME = bytes([ULAW_SILENCE_BYTE]) * FRAME_BYTES
_POLL_S = 0.01


class SimulatedCallError(CallbridgeError):
    """The simulated call failed: the bridge could not be reached, or left while waited on.

    Defined here, not in :mod:`bridge.errors`, because only the simulator (a client of the
    bridge) raises it; websockets' exceptions become this in :meth:`TwilioCaller.connect`.
    """


class TimelineEvent(NamedTuple):
    at: float  # time.monotonic()
    kind: str  # speech | speech_end | media | mark | clear | dtmf | stop
    detail: str | int  # chunk number, byte count, mark name, played bytes, digit, callSid


class ClearRecord(NamedTuple):
    at: float
    played_bytes: int  # agent audio the caller had heard when the clear arrived
    flushed_marks: tuple[str, ...]


def frame_rms(ulaw: bytes) -> float:
    """RMS level of μ-law audio decoded to 16-bit PCM (0.0 for digital silence)."""
    pcm = np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(pcm * pcm))) if pcm.size else 0.0


class SimulatedCaller:
    """One simulated carrier media stream (see the module docstring).

    ``realtime=False`` sends queued caller audio as fast as the socket takes it, then falls back
    to real-time line silence. A caller frame is *voiced* when its decoded RMS reaches
    ``speech_threshold``; an utterance ends after ``turn_hangover_ms`` of unvoiced frames, and
    its response latency runs from its last voiced frame to the first agent audio after it.
    """

    def __init__(
        self,
        url: str,
        wire: CallerWire,
        *,
        custom_parameters: Mapping[str, str] | None = None,
        realtime: bool = True,
        extra_headers: Mapping[str, str] | None = None,
        speech_threshold: float = 300.0,
        turn_hangover_ms: int = 600,
    ) -> None:
        self.url = url
        self.wire = wire
        self.custom_parameters = dict(custom_parameters or {})
        self.realtime = realtime
        self.headers = {**wire.headers(url), **(extra_headers or {})}
        self.speech_threshold = speech_threshold
        self.playback = PlaybackBuffer()
        self.turns = TurnTimer(hangover_frames=max(1, turn_hangover_ms // 20))
        self.violations: list[str] = []
        self.received_audio = bytearray()  # agent audio the caller heard, in play order
        self.arrived_bytes = 0  # agent audio received, played or not
        self.timeline: list[TimelineEvent] = []
        self.clears: list[ClearRecord] = []
        self.marks_echoed: list[str] = []
        self.frames_sent = 0
        self.started_at: float | None = None  # when `start` was sent
        self.first_agent_audio_at: float | None = None
        self.closed_by_bridge = asyncio.Event()
        self.hung_up_by_bridge: str | None = None  # the reason, when the bridge hung up in band
        self.close_code: int | None = None
        self._ws: Transport | None = None
        self._outbox = bytearray()
        self._send_lock = asyncio.Lock()
        self._play_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._hung_up = False
        self._stop_sent = False
        self._last_media_at = -math.inf

    # -- figures -----------------------------------------------------------------------------

    @property
    def turn_latencies_ms(self) -> list[float]:
        return self.turns.latencies_ms

    @property
    def greeting_latency_ms(self) -> float | None:
        if self.started_at is None or self.first_agent_audio_at is None:
            return None
        return (self.first_agent_audio_at - self.started_at) * 1000.0

    @property
    def playing(self) -> bool:
        return self.playback.playing(time.monotonic())

    def played_ulaw(self) -> bytes:
        return bytes(self.received_audio)

    # -- call control ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connect(self, open_timeout: float = 10.0) -> AsyncIterator[SimulatedCaller]:
        """Open the stream, send the wire's opening frames; hang up (if still up) on exit."""
        try:
            ws = await open_transport(
                self.url, self.wire, headers=self.headers, open_timeout=open_timeout
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            msg = f"could not connect to {self.url}: {str(exc) or type(exc).__name__}"
            raise SimulatedCallError(msg, retryable=True) from exc
        self._ws = ws
        tasks: list[asyncio.Task[None]] = []
        try:
            opening = self.wire.opening(self.custom_parameters)
            for frame in opening[:-1]:
                await ws.send(frame)
            self.started_at = time.monotonic()
            await self._send(lambda: opening[-1])
            tasks = [asyncio.create_task(f()) for f in (self._sender, self._receiver, self._player)]
            yield self
        except ConnectionClosed as exc:
            raise SimulatedCallError(f"the bridge closed the stream: {exc}") from exc
        finally:
            await self.hang_up()
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await ws.close()
            for result in results:
                if isinstance(result, Exception):
                    raise result

    async def play(self, ulaw: bytes, *, wait: bool = False) -> None:
        """Queue caller audio (raw μ-law); with ``wait``, return once it has all been sent."""
        self._outbox += ulaw
        if wait:
            await self._wait_for(lambda: not self._outbox, math.inf, "caller audio to be sent")

    async def send_dtmf(self, digit: str) -> None:
        """Send a caller key press (``0``-``9``, ``*``, ``#``) as the carrier's DTMF event."""
        if digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        await self._send(lambda: self.wire.dtmf(digit))
        self._note("dtmf", digit)

    async def hang_up(self) -> None:
        """Send the wire's hang-up (unless the bridge already closed) and close the socket."""
        if self._hung_up or self._ws is None:
            return
        self._hung_up = True
        self.turns.finish()
        if not self.closed_by_bridge.is_set():
            frame = self.wire.hangup()
            if frame is not None:
                with contextlib.suppress(ConnectionClosed, OSError):
                    await self._send(lambda: frame, last=True)
            self._note("stop", self.wire.carrier)
        self._stop_sent = True
        await self._ws.close()

    # -- waiting -----------------------------------------------------------------------------

    async def wait_for_agent_audio(
        self,
        min_bytes: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 (pinned test API; the error names what was awaited)
        *,
        heard: bool = False,
    ) -> int:
        """Wait until ``min_bytes`` of agent audio arrived (or, with ``heard``, played)."""

        def count() -> int:
            return len(self.received_audio) if heard else self.arrived_bytes

        deadline = time.monotonic() + timeout
        await self._wait_for(
            lambda: count() >= min_bytes, deadline, f"{min_bytes} B of agent audio"
        )
        return count()

    async def wait_until_quiet(
        self,
        quiet_s: float = 2.0,
        timeout: float = 30.0,  # noqa: ASYNC109 (pinned test API; the error names what was awaited)
    ) -> None:
        """Wait until no agent audio has arrived or played for ``quiet_s`` (or the bridge left)."""

        def quiet() -> bool:
            last = max(self.started_at or -math.inf, self._last_media_at, self.playback.idle_at())
            return time.monotonic() - last >= quiet_s

        deadline = time.monotonic() + timeout
        await self._wait_for(quiet, deadline, f"{quiet_s} s of agent quiet", closed_ok=True)

    async def _wait_for(
        self, done: Callable[[], bool], deadline: float, what: str, *, closed_ok: bool = False
    ) -> None:
        while not done():
            if self.closed_by_bridge.is_set():
                if closed_ok:
                    return
                raise SimulatedCallError(f"the bridge closed the stream while waiting for {what}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(_POLL_S)

    # -- tasks -------------------------------------------------------------------------------

    async def _send(self, build: Callable[[], Frame], *, last: bool = False) -> None:
        """Encode and send under one lock, so frames leave in sequence-number order."""
        assert self._ws is not None
        async with self._send_lock:
            if self._stop_sent:
                return
            self._stop_sent = last
            await self._ws.send(build())

    async def _send_media(self, frame: bytes) -> None:
        out = self.wire.media(frame)
        for one in out if isinstance(out, list) else (out,):
            await self._send(lambda: one)  # noqa: B023 (awaited now)

    def _note(self, kind: str, detail: str | int, at: float | None = None) -> None:
        self.timeline.append(TimelineEvent(time.monotonic() if at is None else at, kind, detail))

    async def _sender(self) -> None:
        """Media frames on an absolute 20 ms schedule: frame n is due at anchor + (n - n0)·20 ms."""
        assert self.started_at is not None
        anchor, anchor_n, n = self.started_at, 0, 0
        with contextlib.suppress(ConnectionClosed, OSError):
            while not self._hung_up:
                burst = not self.realtime and bool(self._outbox)
                if not burst:
                    delay = anchor + (n - anchor_n) * FRAME_S - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                frame = bytes(self._outbox[:FRAME_BYTES]).ljust(FRAME_BYTES, SILENCE_FRAME[:1])
                del self._outbox[:FRAME_BYTES]
                await self._send_media(frame)
                now = time.monotonic()
                self.frames_sent += 1
                boundary = self.turns.on_frame(frame_rms(frame) >= self.speech_threshold, now)
                if boundary:
                    self._note(boundary, n + 1, now)
                if burst:  # fast mode: idle silence resumes one frame after the burst
                    anchor, anchor_n = now, n
                    await asyncio.sleep(0)
                n += 1

    async def _receiver(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                if self._hung_up:
                    continue
                now = time.monotonic()
                try:
                    messages = self.wire.parse(raw)
                except CarrierProtocolError as exc:
                    self.violations.append(exc.message)
                    continue
                for msg in messages:
                    if isinstance(msg, BridgeMedia):
                        self._on_media(msg.payload, now)
                    elif isinstance(msg, BridgeMark):
                        self.playback.enqueue_mark(msg.name, now)
                    elif isinstance(msg, BridgeClear):
                        await self._on_clear(now)
                    else:
                        self._on_hangup(msg)
                await self._flow(now)
                self._wake.set()
        except (ConnectionClosed, OSError):
            pass
        finally:
            self.close_code = self._ws.close_code
            if not self._hung_up:
                self.closed_by_bridge.set()

    def _on_hangup(self, msg: BridgeHangup) -> None:
        self.hung_up_by_bridge = msg.reason or "hangup"
        self._note("hangup", self.hung_up_by_bridge)

    async def _flow(self, now: float) -> None:
        for frame in self.wire.queue_changed(self.playback.queued_ms(now)):
            await self._send(lambda: frame)  # noqa: B023 (awaited now)

    def _on_media(self, payload: bytes, now: float) -> None:
        self.playback.enqueue_audio(payload, now)
        self.arrived_bytes += len(payload)
        self._last_media_at = now
        if self.first_agent_audio_at is None:
            self.first_agent_audio_at = now
        self.turns.on_agent_audio(now)
        self._note("media", len(payload), now)

    async def _on_clear(self, now: float) -> None:
        async with self._play_lock:
            await self._play_until(now)
            flushed = self.playback.clear(now)
            self.clears.append(ClearRecord(now, self.playback.played_bytes, tuple(flushed)))
            self._note("clear", self.playback.played_bytes, now)
            if not self._hung_up:
                for frame in self.wire.cleared(flushed):
                    await self._send(lambda: frame)  # noqa: B023 (awaited now)
                self.marks_echoed.extend(flushed)

    async def _player(self) -> None:
        """Plays queued agent audio on the monotonic clock and echoes marks as they are reached."""
        with contextlib.suppress(ConnectionClosed, OSError):
            while not self._hung_up:
                self._wake.clear()
                now = time.monotonic()
                async with self._play_lock:
                    await self._play_until(now)
                await self._flow(now)  # the queue drains while the bridge is silent (XON)
                due = self.playback.next_event_time()
                if self.playback.playing(now):  # keep received_audio fresh while playing
                    due = min(due if due is not None else math.inf, now + FRAME_S)
                timeout = None if due is None else max(0.0, due - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    async def _play_until(self, now: float) -> None:
        for item in self.playback.advance(now):
            if isinstance(item, MarkReached):
                await self._echo_mark(item.name)
            else:
                self.received_audio += item.data

    async def _echo_mark(self, name: str) -> None:
        if self._hung_up:
            return
        frame = self.wire.mark_played(name)
        if frame is not None:
            await self._send(lambda: frame)
        self.marks_echoed.append(name)
        self._note("mark", name)


class TwilioCaller(SimulatedCaller):
    """One simulated Twilio media stream (:class:`~bridge.simulate.carriers.twilio.TwilioWire`)."""

    def __init__(
        self,
        url: str,
        *,
        custom_parameters: Mapping[str, str] | None = None,
        call_sid: str | None = None,
        stream_sid: str | None = None,
        account_sid: str | None = None,
        realtime: bool = True,
        extra_headers: Mapping[str, str] | None = None,
        auth_token: str | None = None,
        speech_threshold: float = 300.0,
        turn_hangover_ms: int = 600,
    ) -> None:
        self.twilio = TwilioWire(
            call_sid=call_sid, stream_sid=stream_sid, account_sid=account_sid, auth_token=auth_token
        )
        super().__init__(
            url,
            self.twilio,
            custom_parameters=custom_parameters,
            realtime=realtime,
            extra_headers=extra_headers,
            speech_threshold=speech_threshold,
            turn_hangover_ms=turn_hangover_ms,
        )
        self.call_sid = self.twilio.call_sid
        self.stream_sid = self.twilio.stream_sid
        self.account_sid = self.twilio.account_sid
        self.encoder = self.twilio.encoder
