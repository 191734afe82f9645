"""One live call: the only place that reads the clock and owns tasks.

``CallRuntime.run`` drives a call from the carrier's first frame to its journal entry:

1. **Handshake** — read frames until the carrier's ``start`` (bounded by ``start_timeout_s``).
2. **Set-up** — resolve the agent from the stream's custom parameters, render its prompt, open
   the journal record, build the :class:`~bridge.session.core.CallSession`.
3. **The loop** — three tasks, one per source: the carrier reader, the engine reader and the
   session's timer. Each turns input into session events and carries out the actions the
   session returns. Caller audio takes a short path (codec → ``session.caller_audio`` → engine).
4. **Shutdown** — on the session's ``HangUp``: stop the tasks, close the engine and the carrier
   socket, finish the journal record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from bridge.agents.builtins import BUILTIN_TOOLS, builtin_tools
from bridge.agents.model import Agent
from bridge.agents.template import render_agent
from bridge.audio.transcode import Transcoder
from bridge.carriers.base import (
    CarrierCodec,
    CarrierReply,
    FlowPaused,
    FlowResumed,
    Frame,
    bytes_per_ms,
    silence_byte,
)
from bridge.config import Settings
from bridge.engines.base import EngineClient
from bridge.errors import (
    CallbridgeError,
    CarrierProtocolError,
    CarrierStartRefused,
    EngineUnavailable,
)
from bridge.journal.models import DEFAULT_ORG
from bridge.runtime.control import CallControl
from bridge.runtime.link import CarrierLink, make_link
from bridge.runtime.recording import CallRecording, record_call
from bridge.runtime.services import Services
from bridge.session import actions as act
from bridge.session import events as ev
from bridge.session.config import SessionConfig
from bridge.session.core import CallSession
from bridge.session.state import CallState

log = logging.getLogger(__name__)

MAX_JOURNALED_PROTOCOL_ERRORS = 20
STREAM_TOKEN_PARAM = "callbridge_token"
STREAM_TOKEN_PURPOSE = "stream"
HANGUP_TIMEOUT_S = 5.0
PLAYOUT_WAIT_S = 10.0
"""A transfer waits this long at most for the agent's last words to finish playing."""


class CarrierSocket(Protocol):
    """What the runtime needs of a carrier connection (a websocket, usually)."""

    async def receive(self) -> str | bytes | None:
        """The next frame, or None once the peer has closed."""

    async def send(self, frame: Frame) -> None:
        """Send one frame: ``str`` as text, ``bytes`` as binary."""

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class _NoStart(Exception):
    pass


class CallRuntime:
    """Runs one call end to end. ``clock`` is injectable for tests."""

    def __init__(
        self,
        services: Services,
        socket: CarrierSocket,
        codec: CarrierCodec,
        *,
        call_id: str,
        clock: Callable[[], float] = time.monotonic,
        parameters: dict[str, str] | None = None,
        hang_up: Callable[[ev.CallStarted], Any] | None = None,
    ) -> None:
        self.services = services
        self.socket = socket
        self.codec = codec
        self.link: CarrierLink | None = None
        self._base_params = dict(parameters or {})
        self._carrier_hang_up = hang_up
        self.started: ev.CallStarted | None = None
        """The carrier's start (its call sid), once the handshake is done."""
        self._caller_hung_up = False
        self.call_id = call_id
        self.clock = clock
        self.session = CallSession(SessionConfig(), call_id=call_id)
        self.agent: Agent | None = None
        self.engine: EngineClient | None = None
        self._params: dict[str, str] = {}
        self._org: str | None = None
        self._to_engine: Transcoder | None = None
        self._to_carrier: Transcoder | None = None
        self._hangup: act.HangUp | None = None
        self._done = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._protocol_errors: list[str] = []
        self._journaled_errors = 0
        self.carrier_format = "pcmu"
        self._history: list[tuple[str, str]] = []
        self._fell_back = False
        self._engine_was_ready = False
        self._settings: Settings = services.settings
        self._recording: CallRecording | None = None
        self.control = CallControl(self)
        self._quiet: asyncio.Event | None = None

    # -- the call ----------------------------------------------------------------------------

    async def run(self) -> None:
        journal = self.services.journal
        started_at = datetime.now(UTC)
        try:
            start = await asyncio.wait_for(
                self._handshake(), self.services.settings.start_timeout_s
            )
        except (TimeoutError, _NoStart) as exc:
            reason = str(exc) or "no start message within the time limit"
            log.warning("call %s: %s", self.call_id, reason)
            journal.call_started(self.call_id, carrier=self.codec.carrier, started_at=started_at)
            self._journal_protocol_errors(0.0)
            journal.call_finished(
                self.call_id, status="failed", end_reason=reason, ended_at=datetime.now(UTC)
            )
            await self.socket.close(1000, "no start")
            return
        self.started = start
        self._params = {**self._base_params, **start.custom_parameters}
        existing = self._adopt()
        self._settings = await self.services.org_settings(self.org)
        self.link = make_link(self.socket, self.codec, self._carrier_mark)
        failure = self._set_up(start)
        self.services.running[self.call_id] = self.control
        journal.call_started(
            self.call_id,
            carrier=self.codec.carrier,
            started_at=started_at,
            existing=existing,
            org_id=self._org or DEFAULT_ORG,
            agent=self.agent.name if self.agent else self._params.get("agent"),
            call_sid=start.call_sid or None,
            stream_sid=start.stream_sid,
            from_number=self._params.get("from") or self._params.get("From"),
            to_number=self._params.get("to") or self._params.get("To"),
            context=self._params,
        )
        if failure is None and self.agent is not None and self.agent.record:
            self._recording = record_call(self, start.encoding)
        await self.handle(start)
        self._journal_protocol_errors(0.0)
        if failure is not None:
            await self.handle(ev.StartFailed(failure))
        else:
            self._spawn(self._run_engine())
            self._spawn(self._read_carrier())
        await self._done.wait()
        await self._shut_down()

    async def _handshake(self) -> ev.CallStarted:
        while True:
            frame = await self.socket.receive()
            if frame is None:
                raise _NoStart("the carrier closed the stream before start")
            try:
                event = self.codec.parse(frame)
            except CarrierStartRefused as exc:
                self._protocol_error(exc)
                raise _NoStart(f"start refused: {exc.message}") from None
            except CarrierProtocolError as exc:
                self._protocol_error(exc)
                continue
            if isinstance(event, ev.CallStarted):
                return event
            if isinstance(event, ev.CallerHangup):
                raise _NoStart("the carrier stopped the stream before start")
            if isinstance(event, CarrierReply):
                await self.socket.send(event.frame)

    def _adopt(self) -> bool:
        """Take the id (and organization) of a call a webhook already journaled.

        The webhook's answer (TwiML) put ``callbridge_token`` among the stream's parameters: a
        signed, short-lived ``<call id>:<org>``. With a valid one this stream *is* that call;
        without (or with a forged or expired one) it is a new call, as any stream is.
        """
        token = self._params.pop(STREAM_TOKEN_PARAM, None)
        secrets = self.services.secrets
        if token is None or secrets is None:
            return False
        payload = secrets.verify(STREAM_TOKEN_PURPOSE, token, time.time())
        if payload is None or ":" not in payload:
            log.warning("call %s: stream token invalid or expired: a new call", self.call_id)
            return False
        call_id, self._org = payload.split(":", 1)
        live = self.services.live_calls
        if call_id in live:
            log.warning("call %s: a stream for call %s is already live", self.call_id, call_id)
            return False
        live.discard(self.call_id)
        live.add(call_id)
        self.call_id = call_id
        return True

    def _set_up(self, start: ev.CallStarted) -> str | None:
        """Resolve agent, prompt and engine; return why the call cannot go on, or None."""
        services = self.services
        try:
            # A stream that did not prove its organization (the signed token) reaches only the
            # default organization's agents: naming another tenant's agent is not enough.
            agent = services.agents.get(self._params.get("agent"), self._org or DEFAULT_ORG)
            self.agent = agent
            rendered = render_agent(agent, self._params)
            engine, engine_format = services.make_engine(
                agent,
                rendered,
                carrier_format=start.encoding,
                call_id=self.call_id,
                settings=self._settings,
            )
        except CallbridgeError as exc:
            return str(exc)
        self.carrier_format = start.encoding
        self._use_engine(engine, engine_format)
        rate = bytes_per_ms(start.encoding)
        self.session = CallSession(
            SessionConfig(
                capabilities=engine.capabilities,
                bytes_per_ms=float(rate),
                chunk_bytes=rate * self.codec.frame_ms,
                pad_byte=silence_byte(start.encoding),
                initial_message=rendered.initial_message,
                initial_message_delay_s=agent.initial_message_delay_s,
                idle_time_s=agent.idle_time_seconds,
                max_idle_checks=agent.max_idle_check_count,
                idle_message=rendered.idle_message,
                tool_names=frozenset(
                    [t.name for t in agent.tools if t.webhook]
                    + [t.name for t in builtin_tools(agent)]
                ),
                end_call_tool=agent.end_call_enabled,
                dtmf_flush_s=agent.dtmf_flush_s,
                max_duration_s=agent.max_duration_s,
            ),
            call_id=self.call_id,
        )
        return None

    # -- the three loops ---------------------------------------------------------------------

    async def _read_carrier(self) -> None:
        session, codec, recording = self.session, self.codec, self._recording
        while not self._done.is_set():
            frame = await self.socket.receive()
            if frame is None:
                await self.handle(ev.CallerHangup("carrier closed the stream"))
                return
            try:
                event = codec.parse(frame)
            except CarrierProtocolError as exc:
                self._protocol_error(exc, journal=True)
                continue
            if type(event) is ev.CallerAudio:
                if recording is not None:
                    recording.caller(event.payload, self.clock())
                send = session.caller_audio(event.payload)
                if send is not None:
                    await self._send_caller_audio(send.payload)
            elif isinstance(event, FlowPaused | FlowResumed | CarrierReply):
                await self._carrier_signal(event)
            elif event is not None:
                if type(event) is ev.PlaybackMark and self.link is not None:
                    await self.link.answered(event.name)  # room for marks the link holds
                await self.handle(event)

    async def _carrier_signal(self, signal: FlowPaused | FlowResumed | CarrierReply) -> None:
        link = self.link
        assert link is not None
        if isinstance(signal, CarrierReply):
            await self.socket.send(signal.frame)
        elif isinstance(signal, FlowPaused):
            await link.pause()
        else:
            await link.resume()

    async def _carrier_mark(self, name: str) -> None:
        """A paced link reached (or a clear flushed) one of the session's marks."""
        await self.handle(ev.PlaybackMark(name))

    def _use_engine(self, engine: EngineClient, engine_format: str) -> None:
        self.engine = engine
        carrier = self.carrier_format
        same = engine_format == carrier
        self._to_engine = None if same else Transcoder(carrier, engine_format)
        self._to_carrier = None if same else Transcoder(engine_format, carrier)

    async def _run_engine(self) -> None:
        """Connect the engine and pump its events; move to the fallback engine if it fails."""
        while not self._done.is_set():
            engine = self.engine
            assert engine is not None
            try:
                await engine.connect()
            except EngineUnavailable as exc:
                reason = f"engine unavailable: {exc}"
                log.error("call %s: %s", self.call_id, reason)
                if not await self._fall_back(reason):
                    await self.handle(ev.StartFailed(reason))
                    return
                continue
            if not await self._pump(engine):
                return

    async def _pump(self, engine: EngineClient) -> bool:
        """Engine events into the session until the end; True if the call moved engines."""
        to_carrier = self._to_carrier
        async for received in engine.events():
            event = received
            if type(received) is ev.AgentAudio:
                if to_carrier is not None:
                    audio = to_carrier.convert(received.audio)
                    event = ev.AgentAudio(received.response_id, received.item_id, audio)
            elif isinstance(received, ev.EngineReady):
                self._engine_was_ready = True
            elif isinstance(received, ev.EngineClosed) and await self._fall_back(
                f"engine closed: {received.reason}"
            ):
                return True
            await self.handle(event)
            if self._done.is_set():
                return False
        return False

    async def _fall_back(self, reason: str) -> bool:
        """Hand the call to the agent's fallback engine; False if there is none (or it failed)."""
        agent, services = self.agent, self.services
        if agent is None or agent.fallback is None or self._fell_back or self._done.is_set():
            return False
        if self.session.state not in (CallState.CONNECTING, CallState.ACTIVE):
            return False  # ending anyway
        self._fell_back = True
        previous = self.engine
        try:
            fallback = services.agents.get(agent.fallback, agent.organization)
            rendered = render_agent(fallback, self._params)
            rendered = replace(
                rendered,
                history=tuple(self._history),
                initial_message=None if self._engine_was_ready else rendered.initial_message,
            )
            engine, engine_format = services.make_engine(
                fallback,
                rendered,
                carrier_format=self.carrier_format,
                call_id=self.call_id,
                settings=self._settings,
            )
        except CallbridgeError as exc:
            log.error("call %s: fallback agent unusable: %s", self.call_id, exc)
            return False
        log.warning(
            "call %s: %s; moving to %s (%s)", self.call_id, reason, fallback.name, fallback.engine
        )
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous.close()
        self._use_engine(engine, engine_format)
        await self.handle(
            ev.EngineReplaced(engine.capabilities, reason, agent.engine, fallback.engine)
        )
        return True

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._spawn(self._apply(self.session.handle_timer(self.clock())))

    # -- carrying out actions ----------------------------------------------------------------

    async def handle(self, event: ev.Event) -> None:
        now = self.clock()
        if type(event) is ev.CallerHangup:
            self._caller_hung_up = True
        await self._apply(self.session.handle(event, now), now)

    async def _apply(self, actions: list[act.Action], since: float | None = None) -> None:
        """Carry out ``actions`` in order; ``since`` is when the event behind them arrived."""
        link = self.link
        for action in actions:
            if isinstance(action, act.PlayAudio):
                assert link is not None
                await link.play(action.payload)
            elif isinstance(action, act.SendMark):
                assert link is not None
                await link.mark(action.name)
            elif isinstance(action, act.ClearPlayback):
                assert link is not None
                await link.clear()
                if since is not None:
                    self._journal_clear(since)
            elif isinstance(action, act.JournalTurn | act.JournalEvent | act.JournalToolCall):
                self.services.journal.record(self.call_id, action)
                if type(action) is act.JournalTurn:
                    self._history.append((action.role, action.text))
            elif isinstance(action, act.RunTool):
                self._spawn(self._run_tool(action))
            elif isinstance(action, act.HangUp):
                self._hangup = action
                self._done.set()
            elif self.engine is None:
                continue
            elif isinstance(action, act.SendAudio):
                await self._send_caller_audio(action.payload)
            else:
                await self.engine.send(action)
        self._reschedule()
        if self._quiet is not None and not self.session.agent_audible():
            self._quiet.set()

    async def _send_caller_audio(self, payload: bytes) -> None:
        """Caller audio to the engine, transcoded when the engine speaks another format."""
        if self.engine is None:
            return
        if self._to_engine is not None:
            payload = self._to_engine.convert(payload)
        await self.engine.send_audio(payload)

    def _journal_clear(self, since: float) -> None:
        self.journal("carrier_cleared", latency_ms=round((self.clock() - since) * 1000, 3))

    def _reschedule(self) -> None:
        deadline = self.session.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        if deadline is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, deadline - self.clock())
            self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    async def _run_tool(self, action: act.RunTool) -> None:
        assert self.agent is not None
        if action.name in BUILTIN_TOOLS:
            await self.control.run_builtin(action)
            return
        outcome = await self.services.tools.run(
            agent=self.agent,
            call_id=self.call_id,
            tool_call_id=action.call_id,
            name=action.name,
            arguments=action.arguments,
            context=self._params,
        )
        await self.handle(
            ev.ToolResult(
                action.call_id, action.name, outcome.output, outcome.ok, outcome.duration_ms
            )
        )

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self._done.is_set():
            # A bug, not a peer's fault: end this call cleanly and say so; the server stays up.
            log.error("call %s: internal error: %r", self.call_id, exc, exc_info=exc)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            self.journal("error", message=reason)
            self._hangup = act.HangUp(reason, "failed")
            self._done.set()

    # -- what live call control (``runtime/control.py``) uses ---------------------------------

    @property
    def org(self) -> str:
        return self._org or DEFAULT_ORG

    @property
    def over(self) -> bool:
        return self._done.is_set()

    def handed_over(self) -> None:
        """The carrier carries the call on elsewhere (a transfer): do not hang it up."""
        self._caller_hung_up = True

    async def played_out(self) -> None:
        """Wait (bounded) until the caller has heard everything the agent said."""
        if not self.session.agent_audible():
            return
        self._quiet = asyncio.Event()
        try:
            await asyncio.wait_for(self._quiet.wait(), PLAYOUT_WAIT_S)
        except TimeoutError:
            log.warning("call %s: the agent was still speaking; going on", self.call_id)
        finally:
            self._quiet = None

    def journal(self, kind: str, **data: Any) -> None:
        """Journal an event of this call, at the present time in call."""
        at = self.session.time_in_call(self.clock())
        self.services.journal.record(self.call_id, act.JournalEvent(kind, at, data))

    # -- errors and shutdown -----------------------------------------------------------------

    async def _end_carrier_call(self, hangup: act.HangUp) -> None:
        """We end the call (the caller did not): tell the carrier, in band and over its API."""
        frame = self.codec.hangup()
        if frame is not None:
            with contextlib.suppress(Exception):
                await self.socket.send(frame)
        if self._carrier_hang_up is None or self.started is None:
            return
        try:
            await asyncio.wait_for(self._carrier_hang_up(self.started), HANGUP_TIMEOUT_S)
        except Exception as exc:
            message = f"carrier hang-up failed: {str(exc) or type(exc).__name__}"
            log.warning("call %s: %s", self.call_id, message)
            self.journal("carrier_error", message=message)

    def _protocol_error(self, exc: CarrierProtocolError, *, journal: bool = False) -> None:
        log.warning("call %s: bad frame from carrier: %s", self.call_id, exc.message)
        self._protocol_errors.append(exc.message)
        if journal:
            self._journal_protocol_errors(self.session.time_in_call(self.clock()))

    def _journal_protocol_errors(self, at: float) -> None:
        for message in self._protocol_errors:
            self._journaled_errors += 1
            if self._journaled_errors <= MAX_JOURNALED_PROTOCOL_ERRORS:
                self.services.journal.record(
                    self.call_id, act.JournalEvent("protocol_error", at, {"message": message})
                )
        self._protocol_errors.clear()

    def _stop_recording(self) -> None:
        if self._recording is not None:
            self._recording.close(self.clock())

    async def _shut_down(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.control.stop()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        if self.link is not None:
            self.link.close()
        self._stop_recording()  # now: the hang-up below may take a while, with nothing to hear
        if self.engine is not None:
            await self.engine.close()
        hangup = self._hangup or act.HangUp("ended", "completed")
        if not self._caller_hung_up:
            await self._end_carrier_call(hangup)
        with contextlib.suppress(Exception):
            await self.socket.close(1000, hangup.reason[:120])
        self.services.journal.call_finished(
            self.call_id, status=hangup.status, end_reason=hangup.reason, ended_at=datetime.now(UTC)
        )
        if self.services.running.get(self.call_id) is self.control:
            del self.services.running[self.call_id]
        self.services.live_calls.discard(self.call_id)  # an adopted id (admission has the first)
        log.info("call %s: ended (%s): %s", self.call_id, hangup.status, hangup.reason)
