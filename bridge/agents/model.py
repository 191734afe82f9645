"""Agent definitions: what an agent is, independent of where it is stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the agent may call; ``webhook`` receives the call as a signed JSON POST."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    webhook: str | None = None
    timeout_s: float = 5.0


COLLECT_TYPES = ("string", "number", "boolean", "enum")
"""Types of a ``[[collect_fields]]`` entry; ``enum`` lists its ``values``."""


@dataclass(frozen=True, slots=True)
class CollectField:
    """One field the post-call step extracts from a call's transcript (``null`` if not found)."""

    name: str
    description: str = ""
    type: str = "string"
    values: tuple[str, ...] = ()
    """The allowed values of an ``enum`` field."""


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent, as read from ``agents/<name>.toml`` with its prompt template."""

    name: str
    organization: str = "default"
    """The organization that owns this agent: only its API keys see it and can call with it."""
    engine: str = "openai_realtime"
    model: str = "gpt-realtime"
    voice: str = "marin"
    language: str = "en"
    prompt_template: str = ""
    """The prompt text with ``{{variable}}`` placeholders, already read from ``prompts/``."""
    variables: Mapping[str, str] = field(default_factory=dict)
    """Default values for prompt variables; a placeholder with no default is required."""
    initial_message: str | None = None
    """When set, the agent speaks first and says this."""
    initial_message_delay_s: float = 0.0
    """Say the initial message this long after the engine is ready (skipped if the caller
    speaks first)."""
    idle_time_seconds: float | None = None
    """Silence after which the agent says ``idle_message``; None: never."""
    max_idle_check_count: int = 2
    """Unanswered idle messages after which the next silence ends the call."""
    idle_message: str = "Are you still there?"
    """A template, like ``initial_message``."""
    tools: tuple[ToolSpec, ...] = ()
    tool_secret: str | None = None
    """HMAC key for ``X-Callbridge-Signature`` on tool webhooks (from the environment)."""
    collect_fields: tuple[CollectField, ...] = ()
    """Fields the post-call step extracts from the transcript (``[[collect_fields]]``)."""
    summary: bool = False
    """Summarise each call after it ends (the loader's default: on when there are
    ``collect_fields``)."""
    transcription_model: str | None = "gpt-4o-mini-transcribe"
    temperature: float | None = None
    end_call_enabled: bool = True
    """Offer the built-in ``end_call`` tool to the model."""
    max_duration_s: float = 3600.0
    dtmf_flush_s: float = 1.5
    """Pressed digits are collected and handed to the model after this pause (or on ``#``)."""
    record: bool = False
    """Record each call: a stereo WAV file, caller left and agent right (``record = true``)."""
    audio_format: str | None = None
    """Engine audio format; None = the carrier's own when the engine speaks it (no transcoding)."""
    fallback: str | None = None
    """Another agent whose engine takes the call over if this one cannot connect or dies."""
    keywords: tuple[str, ...] = ()
    """Words speech recognition should favour (names, products)."""
    endpointing_sensitivity: str = "auto"
    """Cascaded engine: how soon a pause ends the caller's turn (sensitive / auto / relaxed)."""
    interrupt_sensitivity: str = "high"
    """Cascaded engine: how readily caller speech interrupts the agent (high / low)."""
    stt: PartSpec | None = None
    llm: PartSpec | None = None
    tts: PartSpec | None = None
    elevenlabs: ElevenLabsSpec | None = None
    dialog: DialogScript | None = None
    voicemail: VoicemailSpec | None = None
    """``[voicemail]``: machine detection on outbound calls and what to do on a machine."""
    transfer_targets: Mapping[str, str] = field(default_factory=dict)
    """``[transfer] targets``: name → E.164 number or SIP URI the ``transfer_call`` tool may
    reach (the model chooses by name, never a number of its own)."""
    dtmf_tool: bool = False
    """``send_dtmf = true``: offer the ``send_dtmf`` tool (keypad tones, for phone menus)."""


@dataclass(frozen=True, slots=True)
class PartSpec:
    """One part of the cascaded engine (``[stt]``, ``[llm]`` or ``[tts]`` in the agent file)."""

    provider: str
    model: str | None = None
    voice: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    """The key's value, read from the environment variable the agent file names."""


@dataclass(frozen=True, slots=True)
class ElevenLabsSpec:
    """``[elevenlabs]``: which ElevenLabs agent answers, and what callbridge overrides."""

    agent_id: str
    private: bool = False
    """Private agents are reached through a signed URL (needs ``ELEVENLABS_API_KEY``)."""
    overrides: tuple[str, ...] = ("prompt", "first_message")
    voice_id: str | None = None


MACHINE_DETECTION = ("off", "detect", "detect_message_end")
"""``detect``: human or machine as soon as known; ``detect_message_end``: for a machine, wait for
the end of its greeting (the beep) — the moment to leave a message."""
VOICEMAIL_ACTIONS = ("hang_up", "leave_message", "continue")


@dataclass(frozen=True, slots=True)
class VoicemailSpec:
    """What an outbound call does when an answering machine picks up."""

    detect: str = "detect_message_end"
    action: str = "hang_up"
    message: str | None = None
    """Said after the beep for ``action = "leave_message"`` (a template, like the prompt)."""


@dataclass(frozen=True, slots=True)
class DialogSlot:
    name: str
    ask: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DialogIntent:
    name: str
    examples: tuple[str, ...]
    reply: str
    slots: tuple[str, ...] = ()
    tool: str | None = None
    tool_error_reply: str | None = None
    end_call: bool = False


@dataclass(frozen=True, slots=True)
class DialogScript:
    """``[dialog]``: a scripted agent for the offline engine — no language model needed."""

    intents: tuple[DialogIntent, ...]
    slots: Mapping[str, DialogSlot] = field(default_factory=dict)
    fallback: str = "Sorry, I did not catch that."
    phrases: tuple[str, ...] = ()
    """Extra phrases the recogniser should know (fillers like "yes", "please", "at")."""

    def recognizer_phrases(self) -> tuple[str, ...]:
        """Everything a caller may say to this script: the speech recogniser's grammar."""
        out: list[str] = []
        for intent in self.intents:
            out += intent.examples
        for slot in self.slots.values():
            out += slot.values
        return tuple(dict.fromkeys([*out, *self.phrases]))
