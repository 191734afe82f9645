"""What the call core needs to know: carrier format, engine abilities, agent knobs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EngineCapabilities:
    """What an engine can do, so the core decides on abilities and never on an engine's name."""

    server_vad: bool = True
    """The engine detects caller speech itself and reports ``SpeechStarted``."""
    truncates: bool = True
    """The engine accepts ``TruncateAgent`` to forget agent audio the caller never heard."""
    auto_interrupt: bool = True
    """The engine cancels its own response when the caller starts speaking."""
    transcripts: bool = True
    """The engine reports ``UserTranscript`` and ``AgentTranscript``."""
    audio_formats: tuple[str, ...] = ("pcmu",)
    """Audio formats it accepts and produces, best first ("pcmu", "pcma", "pcm16/24000")."""
    speaks_initial_message: bool = False
    """The engine is configured with the agent's first words and says them itself."""
    auto_response: bool = False
    """The engine answers tool results and user text on its own; never send ``CreateResponse``."""
    heard_text: bool = False
    """After a barge-in the engine reports exactly which words the caller heard
    (``AgentHeardText``); the interrupted turn is journaled with those words."""
    says_text: bool = True
    """``CreateResponse(say=…)`` makes the agent speak a given text word for word."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Per-call settings of the core. Built by the runtime from the agent and the carrier."""

    capabilities: EngineCapabilities = field(default_factory=EngineCapabilities)
    bytes_per_ms: float = 8.0
    """Carrier audio rate: 8 for G.711 8 kHz, 16 for PCM16 8 kHz."""
    chunk_bytes: int = 160
    """Agent audio goes to the carrier in chunks of this size, each followed by a mark: the
    precision of the heard-audio clock (160 bytes of μ-law = 20 ms)."""
    pad_byte: int | None = None
    """Silence in the carrier's format: the last partial chunk of a response is padded with it
    to a whole chunk (carriers that take whole frames only), or sent short when ``None``."""
    initial_message: str | None = None
    initial_message_delay_s: float = 0.0
    """The greeting is asked for this long after the engine is ready (engines that do not say
    it themselves); the caller speaking or pressing a key before then skips it."""
    idle_time_s: float | None = None
    """After this much silence on the line (agent done, caller quiet) the agent says
    ``idle_message``; None: never."""
    max_idle_checks: int = 2
    """Unanswered idle messages after which the next silent period ends the call."""
    idle_message: str = "Are you still there?"
    tool_names: frozenset[str] = frozenset()
    """Tools that have a webhook; anything else the model calls gets an error result."""
    end_call_tool: bool = True
    dtmf_flush_s: float = 1.5
    max_duration_s: float = 3600.0
    end_call_grace_s: float = 15.0
    """After ``end_call``, hang up at the latest this long later even if audio is still queued."""
    preconnect_frames: int = 100
    """Caller frames kept while the engine connects (100 × 20 ms = 2 s); older ones are dropped."""
