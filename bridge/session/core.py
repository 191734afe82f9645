"""The call core: events and ``now`` in, actions out. No I/O, no clock, no tasks.

One :class:`CallSession` per call. The runtime feeds it every carrier, engine and tool event with
the time it happened and carries out the actions it returns, in order. Timers are the session's
deadlines: the runtime asks :meth:`CallSession.next_deadline` and calls
:meth:`CallSession.handle_timer` when it passes.

What the core decides:

* **Barge-in.** ``SpeechStarted`` while agent audio is queued at the carrier → ``ClearPlayback`` at
  once, ``TruncateAgent`` at the milliseconds the carrier *reported played* (marks), the response
  marked cancelled so every later delta of it is dropped.
* **Tools.** ``ToolCallRequested`` → ``RunTool`` (audio keeps flowing); ``ToolResult`` →
  ``AddToolOutput`` + ``CreateResponse`` once no tool of the turn is outstanding. The built-in
  ``end_call`` lets the agent finish its sentence, then hangs up.
* **DTMF** is journaled at once and handed to the model as text after a short pause (or ``#``).
* **The greeting** is asked for ``initial_message_delay_s`` after the engine is ready; the caller
  speaking (or pressing a key) first skips it: the engine answers them instead.
* **Silence.** After ``idle_time_s`` with nobody speaking (the agent's words fully *played*, no
  response, tool or hold under way) the agent says ``idle_message``; caller speech resets the
  count; after ``max_idle_checks`` unanswered ones the next silence ends the call
  (:mod:`~bridge.session.idle`).
* **Control** (:mod:`~bridge.session.control`): hang up, say, inject, mute, transferred.
* **Responses** are never requested while one is in flight; the request waits for ``ResponseDone``.
* **Journal**: transcript turns with their time in call, an events timeline, tool calls.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bridge.audio.framing import Framer
from bridge.session import actions as act
from bridge.session import control
from bridge.session import events as ev
from bridge.session.config import SessionConfig
from bridge.session.idle import IdleWatch
from bridge.session.playback import PlaybackLedger
from bridge.session.state import ALLOWED, HANDLED, CallState
from bridge.session.turns import AgentItem, AgentTurns

log = logging.getLogger(__name__)

END_CALL_TOOL = "end_call"
_END_CALL_OUTPUT = json.dumps({"ok": True, "note": "The call will end after your last words."})
IDLE_END_REASON = "no response from the caller"


@dataclass(slots=True)
class SessionStats:
    """Counters the runtime exports; cheap to keep on the hot path."""

    frames_in: int = 0
    frames_buffered_dropped: int = 0
    stale_audio_dropped: int = 0
    ignored_events: int = 0
    barge_ins: int = 0


class CallSession:
    """The sans-I/O core of one call."""

    def __init__(self, config: SessionConfig, *, call_id: str = "") -> None:
        self.config = config
        self.call_id = call_id
        self.state = CallState.NEW
        self.stats = SessionStats()
        self.t0: float | None = None
        self.ledger = PlaybackLedger(config.bytes_per_ms)
        self._framer = Framer(config.chunk_bytes)
        self._framing_item: str | None = None
        self._turns = AgentTurns(self.ledger, exact_heard=config.capabilities.heard_text)
        self._preconnect: deque[bytes] = deque(maxlen=max(1, config.preconnect_frames))
        self._response_id: str | None = None
        self._response_requested = False
        self._deferred_response: tuple[str | None, str | None] | None = None
        self._cancelled: set[str] = set()
        self._pending_tools: dict[str, tuple[str, dict[str, Any], float]] = {}
        self._user_speech_at: dict[str, float] = {}
        self._digits: list[str] = []
        self._dtmf_deadline: float | None = None
        self._end_deadline: float | None = None
        self._greeted = False
        self._greet_at: float | None = None
        self._caller_speaking = False
        self._idle = IdleWatch(config.idle_time_s, config.max_idle_checks)
        self._ending_reason = "agent ended the call"
        self._pending_say: ev.SayRequested | None = None
        self.caller_muted = False
        self.agent_muted = False
        self._silent = b""

    # -- entry points ------------------------------------------------------------------------

    def handle(self, event: ev.Event, now: float) -> list[act.Action]:
        """Feed one event; return the actions to carry out, in order."""
        kind = type(event)
        if kind not in HANDLED[self.state]:
            self.stats.ignored_events += 1
            return []
        out = _HANDLERS[kind](self, event, now)
        if self._idle.after_s is not None:
            self._idle.observe(now, busy=self._line_busy())
        return out

    def caller_audio(self, payload: bytes) -> act.SendAudio | None:
        """Hot path for one caller frame: the ``SendAudio`` to forward, or None (buffered)."""
        self.stats.frames_in += 1
        if self.state is CallState.ACTIVE or self.state is CallState.ENDING:
            if self.caller_muted:
                return act.SendAudio(self._silence(len(payload)))
            return act.SendAudio(payload)
        if self.state is CallState.CONNECTING:
            if len(self._preconnect) == self._preconnect.maxlen:
                self.stats.frames_buffered_dropped += 1
            self._preconnect.append(payload)
        return None

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`handle_timer` must run, or None."""
        if self.state is CallState.ENDED or self.t0 is None:
            return None
        timers = (self._dtmf_deadline, self._end_deadline, self._greet_at, self._idle.deadline())
        return min([self.t0 + self.config.max_duration_s, *(t for t in timers if t is not None)])

    def handle_timer(self, now: float) -> list[act.Action]:
        """Run whatever deadline has passed."""
        if self.state is CallState.ENDED or self.t0 is None:
            return []
        if now >= self.t0 + self.config.max_duration_s:
            return self._end(now, "maximum call duration reached", "completed")
        out: list[act.Action] = []
        if self._dtmf_deadline is not None and now >= self._dtmf_deadline:
            out += self._flush_digits(now)
        if self._end_deadline is not None and now >= self._end_deadline:
            out += self._end(now, self._ending_reason, "completed")
        if self._greet_at is not None and now >= self._greet_at:
            out += self._greet()
        if self._idle.due(now) and not self._line_busy():
            out += self._idle_check(now)
        if self._idle.after_s is not None:
            self._idle.observe(now, busy=self._line_busy())
        return out

    # -- helpers -----------------------------------------------------------------------------

    def agent_audible(self) -> bool:
        """The agent is speaking, or its words are still playing at the carrier."""
        return self.ledger.audible or bool(self._framer.pending) or self._response_id is not None

    def time_in_call(self, now: float) -> float:
        return round(now - self.t0, 3) if self.t0 is not None else 0.0

    def _go(self, new: CallState) -> None:
        if (self.state, new) not in ALLOWED:
            raise AssertionError(f"illegal transition {self.state.name} → {new.name}")
        log.debug("call %s: %s → %s", self.call_id, self.state.name, new.name)
        self.state = new

    def _event(self, now: float, kind: str, **data: Any) -> act.JournalEvent:
        return act.JournalEvent(kind, self.time_in_call(now), data)

    def _request_response(
        self, instructions: str | None = None, say: str | None = None
    ) -> list[act.Action]:
        if self.config.capabilities.auto_response and say is None:
            return []  # the engine answers on its own
        if self._response_id is not None or self._response_requested:
            self._deferred_response = (instructions, say)
            return []
        self._response_requested = True
        return [act.CreateResponse(instructions, say)]

    def _end(self, now: float, reason: str, status: str) -> list[act.Action]:
        out: list[act.Action] = [*self._turns.drain(self.time_in_call)]
        out.append(self._event(now, "ended", reason=reason, status=status))
        out.append(act.HangUp(reason, status))
        self._go(CallState.ENDED)
        return out

    # -- greeting and silence ----------------------------------------------------------------

    def _greet(self) -> list[act.Action]:
        """Ask for the agent's first words: said word for word by engines that can be given a
        text, else as one-off instructions."""
        self._greet_at = None
        message = self.config.initial_message
        if self.state is not CallState.ACTIVE or not message:
            return []
        if self.config.capabilities.says_text:
            return self._request_response(say=message)
        instructions = (
            "Start the call: greet the caller by saying exactly this, word for word, "
            f'and nothing else: "{message}"'
        )
        return self._request_response(instructions)

    def _caller_active(self, now: float) -> list[act.Action]:
        """The caller spoke or pressed a key: the silence count starts over, and a greeting
        still waiting for its delay is skipped (the engine answers the caller instead)."""
        self._idle.caller_active()
        if self._greet_at is None:
            return []
        self._greet_at = None
        return [self._event(now, "greeting_skipped", reason="the caller spoke first")]

    def _line_busy(self) -> bool:
        """Someone is speaking or about to, a tool runs or the call is paused: no silence."""
        return (
            self.state is not CallState.ACTIVE
            or self._caller_speaking
            or self.agent_audible()
            or self._response_requested
            or self._deferred_response is not None
            or bool(self._pending_tools)
            or bool(self._digits)
            or self._greet_at is not None
            or self.caller_muted
            or self.agent_muted
            or not self.config.capabilities.says_text  # it could not ask the caller anything
        )

    def _idle_check(self, now: float) -> list[act.Action]:
        """A silent period passed: ask whether the caller is still there, or give up."""
        if not self._idle.check():
            return self._end(now, IDLE_END_REASON, "completed")
        text = self.config.idle_message
        return [
            self._event(now, "idle_check", count=self._idle.checks, text=text),
            *self._request_response(say=text),
        ]

    # -- carrier events ----------------------------------------------------------------------

    def _on_started(self, event: ev.CallStarted, now: float) -> list[act.Action]:
        self.t0 = now
        self._go(CallState.CONNECTING)
        return [
            self._event(
                now,
                "started",
                call_sid=event.call_sid,
                stream_sid=event.stream_sid,
                encoding=event.encoding,
                sample_rate=event.sample_rate,
            )
        ]

    def _on_start_failed(self, event: ev.StartFailed, now: float) -> list[act.Action]:
        if self.t0 is None:
            self.t0 = now
        return [
            self._event(now, "error", message=event.reason),
            *self._end(now, event.reason, event.status),
        ]

    def _on_caller_audio(self, event: ev.CallerAudio, now: float) -> list[act.Action]:
        send = self.caller_audio(event.payload)
        return [send] if send is not None else []

    def _on_dtmf(self, event: ev.CallerDtmf, now: float) -> list[act.Action]:
        out: list[act.Action] = [self._event(now, "dtmf", digit=event.digit)]
        out += self._caller_active(now)
        self._digits.append(event.digit)
        if event.digit == "#" and self.state is not CallState.CONNECTING:
            out += self._flush_digits(now)
        else:
            self._dtmf_deadline = now + self.config.dtmf_flush_s
        return out

    def _flush_digits(self, now: float) -> list[act.Action]:
        if self.state is CallState.CONNECTING or not self._digits:
            self._dtmf_deadline = now + self.config.dtmf_flush_s if self._digits else None
            return []
        digits = "".join(self._digits)
        self._digits.clear()
        self._dtmf_deadline = None
        text = f"The caller pressed these keys on the phone keypad: {digits}"
        return [act.AddUserText(text), *self._request_response()]

    def _on_mark(self, event: ev.PlaybackMark, now: float) -> list[act.Action]:
        if not self.ledger.acknowledge(event.name, now):
            return []
        out: list[act.Action] = list(self._turns.on_played(self.time_in_call))
        return out + self._maybe_finish_ending(now)

    def _on_hangup(self, event: ev.CallerHangup, now: float) -> list[act.Action]:
        if self.t0 is None:
            self.t0 = now
        return self._end(now, event.reason, "completed")

    # -- engine events -----------------------------------------------------------------------

    def _on_engine_ready(self, event: ev.EngineReady, now: float) -> list[act.Action]:
        self._go(CallState.ACTIVE)
        data = {"session_id": event.session_id} if event.session_id else {}
        out: list[act.Action] = [self._event(now, "engine_ready", **data)]
        if self._preconnect:
            out.append(act.SendAudio(b"".join(self._preconnect)))
            self._preconnect.clear()
        greeted, self._greeted = self._greeted, True
        if (
            self.config.initial_message
            and not greeted
            and not self.config.capabilities.speaks_initial_message
        ):
            self._greet_at = now + self.config.initial_message_delay_s
            if self.config.initial_message_delay_s <= 0:
                out += self._greet()
        if self._digits:
            out += self._flush_digits(now)
        if self._pending_say is not None:
            pending, self._pending_say = self._pending_say, None
            out += control.say(self, pending, now)
        return out

    def _on_speech_started(self, event: ev.SpeechStarted, now: float) -> list[act.Action]:
        if event.item_id is not None:
            self._user_speech_at[event.item_id] = now
        self._caller_speaking = True
        out = self._cut_agent(
            now, "barge_in", engine_cancels=self.config.capabilities.auto_interrupt
        )
        return out + self._caller_active(now)

    def _on_speech_stopped(self, event: ev.SpeechStopped, now: float) -> list[act.Action]:
        self._caller_speaking = False
        return self._caller_active(now)

    def _cut_agent(self, now: float, kind: str, *, engine_cancels: bool) -> list[act.Action]:
        """Stop the agent mid-sentence: flush the carrier, truncate what was not heard, drop the
        rest of the response. ``kind`` names the journal event (``barge_in``, ``interrupted``)."""
        out: list[act.Action] = []
        response = self._response_id
        queued = self.ledger.audible or bool(self._framer.pending)
        cut = self.ledger.pending_items()
        cut += [i for i in self._turns.unfinished_of(response) if i not in cut]
        interrupted = self._turns.interrupt(cut, now)  # heard positions, before the flush
        if queued:
            out.append(act.ClearPlayback())
            self._framer.reset()
            self._framing_item = None
            self.ledger.flush()
        if interrupted:
            self.stats.barge_ins += 1
            for item in interrupted:
                if self.config.capabilities.truncates:
                    out.append(act.TruncateAgent(item.item_id, item.heard_ms))
                self._cancelled.add(item.response_id)
                out.append(
                    self._event(
                        now,
                        kind,
                        item_id=item.item_id,
                        heard_ms=item.heard_ms,
                        sent_ms=self.ledger.sent_ms(item.item_id),
                    )
                )
            out += self._turns.drain_finished(self.time_in_call)
        if response is not None:
            self._cancelled.add(response)
            if not engine_cancels:
                out.append(act.CancelResponse(response))
        return out

    def _on_response_started(self, event: ev.ResponseStarted, now: float) -> list[act.Action]:
        self._response_id = event.response_id
        self._response_requested = False
        return []

    def _on_agent_audio(self, event: ev.AgentAudio, now: float) -> list[act.Action]:
        if event.response_id in self._cancelled:
            self.stats.stale_audio_dropped += 1
            return []
        item = self._turns.get_or_start(event.item_id, event.response_id, now)
        out: list[act.Action] = []
        if self._framing_item != item.item_id:
            out += self._flush_framer()
            self._framing_item = item.item_id
        for chunk in self._framer.push(event.audio):
            out.append(act.PlayAudio(self._silence(len(chunk)) if self.agent_muted else chunk))
            out.append(act.SendMark(self.ledger.sent(item.item_id, len(chunk))))
        return out

    def _flush_framer(self) -> list[act.Action]:
        rest = self._framer.flush(self.config.pad_byte)
        if not rest or self._framing_item is None:
            return []
        return [act.PlayAudio(rest), act.SendMark(self.ledger.sent(self._framing_item, len(rest)))]

    def _on_agent_audio_done(self, event: ev.AgentAudioDone, now: float) -> list[act.Action]:
        if event.response_id in self._cancelled:
            return []
        out: list[act.Action] = []
        if self._framing_item == event.item_id:
            out += self._flush_framer()
            self._framing_item = None
        item = self._turns.get(event.item_id)
        if item is not None:
            item.audio_done = True
            out += self._turns.on_played(self.time_in_call)
        return out

    def _on_agent_transcript(self, event: ev.AgentTranscript, now: float) -> list[act.Action]:
        return [*self._turns.on_transcript(event, now, self.time_in_call)]

    def _on_agent_heard_text(self, event: ev.AgentHeardText, now: float) -> list[act.Action]:
        return [*self._turns.on_heard_text(event.item_id, event.text, self.time_in_call)]

    def _on_user_transcript(self, event: ev.UserTranscript, now: float) -> list[act.Action]:
        text = event.text.strip()
        started = self._user_speech_at.pop(event.item_id, now)
        self._caller_speaking = False
        out = self._caller_active(now)
        if not text:
            return out
        return [*out, act.JournalTurn("user", text, self.time_in_call(started))]

    def _on_response_done(self, event: ev.ResponseDone, now: float) -> list[act.Action]:
        out: list[act.Action] = []
        if event.status == "failed":
            out.append(self._event(now, "error", message=f"response failed: {event.error}"))
        if event.response_id == self._response_id or self._response_id is None:
            self._response_id = None
            self._response_requested = False
        self._cancelled.discard(event.response_id)  # a response sends nothing after its done
        if self._deferred_response is not None and not self._pending_tools:
            instructions, say = self._deferred_response
            self._deferred_response = None
            out += self._request_response(instructions, say)
        return out + self._maybe_finish_ending(now)

    def _on_tool_call(self, event: ev.ToolCallRequested, now: float) -> list[act.Action]:
        try:
            arguments = json.loads(event.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            output = json.dumps({"error": f"invalid arguments for {event.name}: {exc}"})
            return [
                self._event(now, "tool_error", name=event.name, message=str(exc)),
                act.AddToolOutput(event.call_id, output, is_error=True),
                *self._request_response(),
            ]
        if event.name == END_CALL_TOOL and self.config.end_call_tool:
            out: list[act.Action] = [
                self._event(now, "end_call_requested", reason=arguments.get("reason")),
                act.AddToolOutput(event.call_id, _END_CALL_OUTPUT),
            ]
            if self.state is CallState.ACTIVE:
                self._go(CallState.ENDING)
                self._end_deadline = now + self.config.end_call_grace_s
            return out + self._maybe_finish_ending(now)
        if event.name not in self.config.tool_names:
            output = json.dumps({"error": f"unknown tool {event.name!r}"})
            return [
                self._event(now, "tool_error", name=event.name, message="unknown tool"),
                act.AddToolOutput(event.call_id, output, is_error=True),
                *self._request_response(),
            ]
        self._pending_tools[event.call_id] = (event.name, arguments, now)
        return [
            self._event(now, "tool_call", name=event.name, call_id=event.call_id),
            act.RunTool(event.call_id, event.name, arguments),
        ]

    def _on_tool_result(self, event: ev.ToolResult, now: float) -> list[act.Action]:
        pending = self._pending_tools.pop(event.call_id, None)
        if pending is None:
            return []
        name, arguments, started = pending
        out: list[act.Action] = [
            act.JournalToolCall(
                event.call_id,
                name,
                arguments,
                event.output,
                event.ok,
                self.time_in_call(started),
                event.duration_ms,
            ),
            self._event(now, "tool_result", name=name, call_id=event.call_id, ok=event.ok),
            act.AddToolOutput(event.call_id, event.output, is_error=not event.ok),
        ]
        if self.state is CallState.CONNECTING:
            return out[:2]  # the engine that asked is gone; its successor never saw the call
        if not self._pending_tools and self.state is CallState.ACTIVE:
            out += self._request_response()
        return out

    def _on_engine_error(self, event: ev.EngineError, now: float) -> list[act.Action]:
        return [self._event(now, "engine_error", message=event.message, code=event.code)]

    def _on_engine_replaced(self, event: ev.EngineReplaced, now: float) -> list[act.Action]:
        """Forget the failed engine's work in flight; wait for the fallback to be ready."""
        response = self._response_id
        if response is not None:
            self._cancelled.add(response)
        self._turns.end_audio(response)
        out: list[act.Action] = [
            self._event(
                now,
                "engine_fallback",
                previous=event.previous,
                engine=event.engine,
                reason=event.reason,
            ),
            *self._flush_framer(),
        ]
        self._framing_item = None
        self._response_id = None
        self._response_requested = False
        self._deferred_response = None
        self._caller_speaking = False
        if self._greet_at is not None:  # never said: the new engine greets once it is ready
            self._greet_at = None
            self._greeted = False
        self.config = replace(self.config, capabilities=event.capabilities)
        self._turns.exact_heard = event.capabilities.heard_text
        if self.state is CallState.ACTIVE:
            self._go(CallState.CONNECTING)
        return out + self._turns.on_played(self.time_in_call)

    def _on_engine_closed(self, event: ev.EngineClosed, now: float) -> list[act.Action]:
        return [
            self._event(now, "error", message=f"engine closed: {event.reason}"),
            *self._end(now, f"engine closed: {event.reason}", "failed"),
        ]

    def _interrupt(self, now: float) -> list[act.Action]:
        """Cut the agent for the control plane (the engine did not see caller speech, so it
        is told to cancel); a new response may start at once."""
        out = self._cut_agent(now, "interrupted", engine_cancels=False)
        self._response_id = None
        self._response_requested = False
        self._deferred_response = None
        return out

    def _silence(self, size: int) -> bytes:
        """``size`` bytes of silence (one frame's worth is kept: muting is per frame)."""
        if len(self._silent) != size:
            self._silent = bytes((self.config.pad_byte or 0,)) * size
        return self._silent

    def _maybe_finish_ending(self, now: float) -> list[act.Action]:
        if self.state is not CallState.ENDING:
            return []
        if (
            self._response_id is not None
            or self._response_requested
            or self._deferred_response is not None
            or self.ledger.audible
            or self._framer.pending
        ):
            return []
        return self._end(now, self._ending_reason, "completed")


_Handler = Callable[[CallSession, Any, float], list[act.Action]]
_HANDLERS: dict[type, _Handler] = {
    ev.CallStarted: CallSession._on_started,
    ev.StartFailed: CallSession._on_start_failed,
    ev.CallerAudio: CallSession._on_caller_audio,
    ev.CallerDtmf: CallSession._on_dtmf,
    ev.PlaybackMark: CallSession._on_mark,
    ev.CallerHangup: CallSession._on_hangup,
    ev.EngineReady: CallSession._on_engine_ready,
    ev.SpeechStarted: CallSession._on_speech_started,
    ev.SpeechStopped: CallSession._on_speech_stopped,
    ev.ResponseStarted: CallSession._on_response_started,
    ev.AgentAudio: CallSession._on_agent_audio,
    ev.AgentAudioDone: CallSession._on_agent_audio_done,
    ev.AgentTranscript: CallSession._on_agent_transcript,
    ev.AgentHeardText: CallSession._on_agent_heard_text,
    ev.UserTranscript: CallSession._on_user_transcript,
    ev.ResponseDone: CallSession._on_response_done,
    ev.ToolCallRequested: CallSession._on_tool_call,
    ev.ToolResult: CallSession._on_tool_result,
    ev.EngineError: CallSession._on_engine_error,
    ev.EngineClosed: CallSession._on_engine_closed,
    ev.EngineReplaced: CallSession._on_engine_replaced,
    ev.HangUpRequested: control.on_hang_up_requested,
    ev.SayRequested: control.on_say_requested,
    ev.MessageInjected: control.on_message_injected,
    ev.MuteChanged: control.on_mute_changed,
    ev.Transferred: control.on_transferred,
}
"""Event type → handler. A class-level table: a session holds no bound methods of itself, so
it forms no reference cycle and is freed as soon as its call ends (no full GC needed)."""

__all__ = ["END_CALL_TOOL", "IDLE_END_REASON", "AgentItem", "CallSession", "SessionStats"]
