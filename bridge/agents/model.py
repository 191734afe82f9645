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


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent, as read from ``agents/<name>.toml`` with its prompt template."""

    name: str
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
    tools: tuple[ToolSpec, ...] = ()
    tool_secret: str | None = None
    """HMAC key for ``X-Callbridge-Signature`` on tool webhooks (from the environment)."""
    transcription_model: str | None = "gpt-4o-mini-transcribe"
    temperature: float | None = None
    end_call_enabled: bool = True
    """Offer the built-in ``end_call`` tool to the model."""
    max_duration_s: float = 3600.0
    dtmf_flush_s: float = 1.5
    """Pressed digits are collected and handed to the model after this pause (or on ``#``)."""
    audio_format: str | None = None
    """Engine audio format; None = the carrier's own when the engine speaks it (no transcoding)."""
