"""Call states and the transition table.

The table is the whole truth about which events a state handles and where a call may go next;
``tests/session/test_state.py`` property-tests every state × event against it.
"""

from __future__ import annotations

import enum

from bridge.session import events as ev


class CallState(enum.Enum):
    NEW = "new"
    """Session created; the carrier stream has not been handed over yet."""
    CONNECTING = "connecting"
    """The stream started; the engine is not ready. Caller audio is buffered (bounded)."""
    ACTIVE = "active"
    """Audio flows both ways."""
    ENDING = "ending"
    """The agent asked to end the call; its last words are still playing."""
    ENDED = "ended"
    """Nothing more happens; every event is ignored."""


_CARRIER = (ev.CallerAudio, ev.CallerDtmf, ev.PlaybackMark, ev.CallerHangup)
_ENGINE = (
    ev.SpeechStarted,
    ev.SpeechStopped,
    ev.ResponseStarted,
    ev.AgentAudio,
    ev.AgentAudioDone,
    ev.AgentTranscript,
    ev.AgentHeardText,
    ev.UserTranscript,
    ev.ResponseDone,
    ev.ToolCallRequested,
    ev.EngineError,
    ev.EngineClosed,
)

_CONTROL = (ev.HangUpRequested, ev.MuteChanged, ev.Transferred)

HANDLED: dict[CallState, frozenset[type]] = {
    CallState.NEW: frozenset({ev.CallStarted, ev.StartFailed, ev.CallerHangup}),
    CallState.CONNECTING: frozenset(
        {
            *_CARRIER,
            ev.EngineReady,
            ev.EngineError,
            ev.EngineClosed,
            ev.EngineReplaced,
            ev.StartFailed,
            ev.ToolResult,
            *_CONTROL,
            ev.SayRequested,
        }
    ),
    CallState.ACTIVE: frozenset(
        {
            *_CARRIER,
            *_ENGINE,
            ev.ToolResult,
            ev.EngineReplaced,
            *_CONTROL,
            ev.SayRequested,
            ev.MessageInjected,
        }
    ),
    CallState.ENDING: frozenset({*_CARRIER, *_ENGINE, ev.ToolResult, *_CONTROL}),
    CallState.ENDED: frozenset(),
}
"""Events each state acts on. Anything else is ignored (and counted)."""

ALLOWED: frozenset[tuple[CallState, CallState]] = frozenset(
    {
        (CallState.NEW, CallState.CONNECTING),
        (CallState.NEW, CallState.ENDED),
        (CallState.CONNECTING, CallState.ACTIVE),
        (CallState.CONNECTING, CallState.ENDED),
        (CallState.ACTIVE, CallState.ENDING),
        (CallState.ACTIVE, CallState.CONNECTING),  # moving to the fallback engine
        (CallState.ACTIVE, CallState.ENDED),
        (CallState.ENDING, CallState.ENDED),
    }
)
"""Every transition a call may make."""
