"""The call core's control-plane events: hang up, say, inject a message, mute, transferred.

Handlers of :class:`~bridge.session.core.CallSession` kept apart from the carrier and engine
handlers they share the core's helpers with (this module is the core's own: it uses the
session's ``_``-named helpers as the core does). Like the core: events and ``now`` in, actions
out; no I/O, no clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.session import actions as act
from bridge.session import events as ev
from bridge.session.state import CallState

if TYPE_CHECKING:
    from bridge.session.core import CallSession

__all__ = [
    "on_hang_up_requested",
    "on_message_injected",
    "on_mute_changed",
    "on_say_requested",
    "on_transferred",
    "say",
]

SAID_LAST_WORDS = "the agent said its last words (control)"
SLOW_SPEECH_CHARS_PER_S = 8
"""A ``then_hang_up`` text gets this long to play (plus the end-call grace) before the line
closes regardless."""


def on_hang_up_requested(s: CallSession, event: ev.HangUpRequested, now: float) -> list[act.Action]:
    return [s._event(now, "control", action="hang_up"), *s._end(now, event.reason, event.status)]


def on_say_requested(s: CallSession, event: ev.SayRequested, now: float) -> list[act.Action]:
    out: list[act.Action] = [
        s._event(
            now,
            "control",
            action="say",
            text=event.text,
            interrupt=event.interrupt,
            then_hang_up=event.then_hang_up,
        )
    ]
    if s.state is CallState.CONNECTING:
        s._pending_say = event  # said as soon as the engine is ready
        return out
    return out + say(s, event, now)


def say(s: CallSession, event: ev.SayRequested, now: float) -> list[act.Action]:
    """The words of ``event``, now (the engine is ready)."""
    out = s._interrupt(now) if event.interrupt else []
    out += s._request_response(say=event.text)
    if event.then_hang_up and s.state is CallState.ACTIVE:
        s._go(CallState.ENDING)
        s._ending_reason = SAID_LAST_WORDS
        s._end_deadline = (
            now + s.config.end_call_grace_s + len(event.text) / SLOW_SPEECH_CHARS_PER_S
        )
    return out


def on_message_injected(s: CallSession, event: ev.MessageInjected, now: float) -> list[act.Action]:
    user = event.role == "user"
    out: list[act.Action] = [
        s._event(now, "control", action="inject", role=event.role, text=event.text),
        act.AddUserText(event.text) if user else act.AddSystemText(event.text),
    ]
    if user:
        out.append(act.JournalTurn("user", event.text, s.time_in_call(now)))
    if event.respond:
        out += s._request_response()
    return out


def on_mute_changed(s: CallSession, event: ev.MuteChanged, now: float) -> list[act.Action]:
    out = s._interrupt(now) if event.interrupt else []
    if event.caller is not None:
        s.caller_muted = event.caller
    if event.agent is not None:
        s.agent_muted = event.agent
    mute = s._event(now, "control", action="mute", caller=s.caller_muted, agent=s.agent_muted)
    return [*out, mute]


def on_transferred(s: CallSession, event: ev.Transferred, now: float) -> list[act.Action]:
    """The carrier moved the call; with ``tool_call_id`` it was the agent's ``transfer_call``,
    whose call is journaled now (no result will come back: the call is over)."""
    out: list[act.Action] = []
    pending = s._pending_tools.pop(event.tool_call_id or "", None)
    if pending is not None:
        name, arguments, started = pending
        out.append(
            act.JournalToolCall(
                event.tool_call_id or "",
                name,
                arguments,
                event.output,
                True,
                s.time_in_call(started),
                event.duration_ms,
            )
        )
    out.append(s._event(now, "transferred", target=event.target))
    return out + s._end(now, f"transferred to {event.target}", "transferred")
