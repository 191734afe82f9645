"""Actions that flow *out of* the call session.

The session never performs I/O; it returns these and the runtime carries them out: carrier
actions go through the carrier codec, engine actions through the engine protocol, ``RunTool`` to
the tool dispatcher and ``Journal*`` to the journal writer (off the hot path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# --- to the carrier -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlayAudio:
    """Queue agent audio (carrier format) for playback to the caller."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class SendMark:
    """Ask the carrier to report when playback reaches this point."""

    name: str


@dataclass(frozen=True, slots=True)
class ClearPlayback:
    """Drop every piece of agent audio the carrier has not played yet."""


@dataclass(frozen=True, slots=True)
class HangUp:
    """End the call: close the carrier stream and the engine. ``status`` goes to the journal."""

    reason: str
    status: str = "completed"


# --- to the engine --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendAudio:
    """Caller audio (carrier format) for the engine."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class TruncateAgent:
    """Tell the engine the caller heard only ``audio_end_ms`` of this item."""

    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """Stop generating the response in progress."""

    response_id: str | None = None


@dataclass(frozen=True, slots=True)
class AddUserText:
    """Put a user text message into the conversation (DTMF, injected messages)."""

    text: str


@dataclass(frozen=True, slots=True)
class AddToolOutput:
    """Hand a tool's result back to the model."""

    call_id: str
    output: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class CreateResponse:
    """Ask the engine to respond now, optionally with one-off instructions — or, with
    ``say``, to speak exactly that text."""

    instructions: str | None = None
    say: str | None = None


@dataclass(frozen=True, slots=True)
class AddSystemText:
    """Add a system (operator) note to the conversation; it is not the caller's words."""

    text: str


# --- to the tool dispatcher -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunTool:
    """Run a tool's webhook; the runtime answers with a ``ToolResult`` event."""

    call_id: str
    name: str
    arguments: Mapping[str, Any]


# --- to the journal -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournalTurn:
    """One transcript turn. ``time_in_call_secs`` is when it started, from call start."""

    role: str  # "user" | "agent"
    text: str
    time_in_call_secs: float
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """One entry of the call's events timeline."""

    kind: str
    time_in_call_secs: float
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JournalToolCall:
    """A finished tool call with its result."""

    call_id: str
    name: str
    arguments: Mapping[str, Any]
    output: str
    ok: bool
    time_in_call_secs: float
    duration_ms: float


CarrierAction = PlayAudio | SendMark | ClearPlayback
EngineAction = (
    SendAudio
    | TruncateAgent
    | CancelResponse
    | AddUserText
    | AddSystemText
    | AddToolOutput
    | CreateResponse
)
JournalAction = JournalTurn | JournalEvent | JournalToolCall
Action = CarrierAction | EngineAction | RunTool | HangUp | JournalAction
