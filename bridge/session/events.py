"""Events that flow *into* the call session.

One vocabulary for every carrier and every engine: codecs turn wire messages into these frozen
dataclasses and nothing past a codec ever sees provider JSON. Audio payloads are always in the
*carrier's* format (for Twilio: G.711 μ-law, 8 kHz); the runtime transcodes engine audio before it
reaches the session when the two formats differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.session.config import EngineCapabilities

# --- from the carrier -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The carrier stream started: identifiers, per-call parameters and the audio format."""

    call_sid: str
    stream_sid: str
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    encoding: str = "pcmu"  # the audio format: "pcmu" | "pcma" | "pcm16/8000" | "pcm16/16000" | …
    sample_rate: int = 8000


@dataclass(frozen=True, slots=True)
class CallerAudio:
    """One chunk of the caller's audio (normally 20 ms) in the carrier's format."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class CallerDtmf:
    """The caller pressed a key."""

    digit: str


@dataclass(frozen=True, slots=True)
class PlaybackMark:
    """The carrier reports that playback reached (or a clear flushed) the named mark."""

    name: str


@dataclass(frozen=True, slots=True)
class CallerHangup:
    """The carrier ended the stream (``stop``) or its socket closed."""

    reason: str = "caller hung up"


# --- from the engine ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineReady:
    """The engine accepted the session configuration; audio may flow."""

    session_id: str | None = None
    """The engine's own id of this conversation (journaled, for the vendor's support)."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The engine's VAD heard the caller start speaking."""

    item_id: str | None = None
    audio_start_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The engine's VAD heard the caller stop speaking."""

    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """The engine began a response."""

    response_id: str


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """A piece of the agent's speech, already in the carrier's format."""

    response_id: str
    item_id: str
    audio: bytes


@dataclass(frozen=True, slots=True)
class AgentAudioDone:
    """No more audio will come for this item."""

    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class AgentTranscript:
    """The full text of what the agent said (or was about to say) in one item."""

    response_id: str
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class AgentHeardText:
    """After a barge-in: exactly the words of this item the caller heard (engines with
    ``heard_text``; e.g. ElevenLabs' ``agent_response_correction``, TTS word timings)."""

    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class UserTranscript:
    """The engine's transcription of one caller utterance."""

    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """A response finished: ``completed``, ``cancelled``, ``failed`` or ``incomplete``."""

    response_id: str
    status: str = "completed"
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallRequested:
    """The agent wants a tool run. ``arguments`` is the raw JSON text the engine produced."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class EngineError:
    """The engine reported an error but the session stays open."""

    message: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class EngineClosed:
    """The engine connection is gone; the call cannot continue on it."""

    reason: str


# --- from the runtime -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool finished. ``output`` is the text handed back to the model."""

    call_id: str
    name: str
    output: str
    ok: bool
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class EngineReplaced:
    """The runtime moved the call to the agent's fallback engine (the first one failed).

    The session forgets the old engine's response in flight and waits for ``EngineReady`` from
    the new one, buffering caller audio meanwhile, exactly as at the start of the call."""

    capabilities: EngineCapabilities
    reason: str
    previous: str
    engine: str


@dataclass(frozen=True, slots=True)
class StartFailed:
    """The call could not be set up (unknown agent, missing prompt variable, no engine)."""

    reason: str
    status: str = "failed"


# --- from the control plane (API calls, carrier callbacks) -----------------------------------


@dataclass(frozen=True, slots=True)
class HangUpRequested:
    """End the call now (an API call, or an answering machine the agent must not talk to)."""

    reason: str
    status: str = "completed"


@dataclass(frozen=True, slots=True)
class SayRequested:
    """Have the agent say ``text`` word for word.

    ``interrupt``: cut what the agent is saying first (as a barge-in would). ``then_hang_up``:
    end the call once the words have played (a voicemail message).
    """

    text: str
    interrupt: bool = False
    then_hang_up: bool = False


@dataclass(frozen=True, slots=True)
class MessageInjected:
    """Add a message to the agent's context: what the ``user`` said, or a ``system`` note."""

    role: str
    text: str
    respond: bool = True
    """Ask the agent to respond to it now."""


@dataclass(frozen=True, slots=True)
class MuteChanged:
    """Mute or unmute a side: a muted caller is silence to the agent, a muted agent is silence
    to the caller (its turn still runs its course). None leaves that side as it is."""

    caller: bool | None = None
    agent: bool | None = None
    interrupt: bool = False
    """Also cut what the agent is saying (going on hold)."""


@dataclass(frozen=True, slots=True)
class Transferred:
    """The carrier moved the call elsewhere (a cold transfer): this bridge's part is over.

    ``tool_call_id``: the agent's ``transfer_call`` that did it (journaled with ``output``)."""

    target: str
    tool_call_id: str | None = None
    output: str = ""
    duration_ms: float = 0.0


ControlEvent = HangUpRequested | SayRequested | MessageInjected | MuteChanged | Transferred

CarrierEvent = CallStarted | CallerAudio | CallerDtmf | PlaybackMark | CallerHangup
EngineEvent = (
    EngineReady
    | SpeechStarted
    | SpeechStopped
    | ResponseStarted
    | AgentAudio
    | AgentAudioDone
    | AgentTranscript
    | AgentHeardText
    | UserTranscript
    | ResponseDone
    | ToolCallRequested
    | EngineError
    | EngineClosed
)
Event = CarrierEvent | EngineEvent | ToolResult | EngineReplaced | StartFailed | ControlEvent
