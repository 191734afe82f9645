"""Engine factories by name: how an agent definition becomes a connected engine client."""

from __future__ import annotations

from collections.abc import Callable

from bridge.agents.model import Agent
from bridge.agents.template import RenderedAgent
from bridge.config import Settings
from bridge.engines.base import EngineClient
from bridge.engines.openai_realtime.client import OpenAIRealtimeClient
from bridge.engines.openai_realtime.protocol import (
    CAPABILITIES,
    OpenAIRealtimeProtocol,
    RealtimeConfig,
)
from bridge.errors import ConfigError

EngineFactory = Callable[[Agent, RenderedAgent, Settings, str, str], tuple[EngineClient, str]]


def choose_format(carrier_format: str, engine_formats: tuple[str, ...]) -> str:
    """The carrier's format if the engine speaks it (no transcoding), else the engine's last."""
    return carrier_format if carrier_format in engine_formats else engine_formats[-1]


def openai_realtime(
    agent: Agent, rendered: RenderedAgent, settings: Settings, carrier_format: str, call_id: str
) -> tuple[EngineClient, str]:
    audio_format = agent.audio_format or choose_format(carrier_format, CAPABILITIES.audio_formats)
    if audio_format not in CAPABILITIES.audio_formats:
        raise ConfigError(
            f"agent {agent.name!r}: OpenAI Realtime does not take audio_format {audio_format!r}"
        )
    protocol = OpenAIRealtimeProtocol(
        RealtimeConfig(
            model=agent.model,
            instructions=rendered.instructions,
            voice=agent.voice,
            audio_format=audio_format,
            language=agent.language,
            transcription_model=agent.transcription_model,
            tools=[
                {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
                for t in agent.tools
            ],
            end_call_tool=agent.end_call_enabled,
        )
    )
    client = OpenAIRealtimeClient(
        protocol,
        api_key=settings.openai_api_key or "",
        url=settings.openai_realtime_url,
        call_id=call_id,
    )
    return client, audio_format


ENGINE_FACTORIES: dict[str, EngineFactory] = {"openai_realtime": openai_realtime}
