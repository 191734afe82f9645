"""Engine factories by name: how an agent definition becomes an engine client for one call."""

from __future__ import annotations

from collections.abc import Callable

from bridge.agents.builtins import builtin_tools
from bridge.agents.model import Agent, PartSpec
from bridge.agents.template import RenderedAgent
from bridge.config import Settings
from bridge.engines.base import EngineClient
from bridge.engines.elevenlabs.client import ElevenLabsClient
from bridge.engines.elevenlabs.protocol import CAPABILITIES as ELEVENLABS_CAPABILITIES
from bridge.engines.elevenlabs.protocol import ElevenLabsConfig, ElevenLabsProtocol
from bridge.engines.openai_realtime.client import OpenAIRealtimeClient
from bridge.engines.openai_realtime.protocol import (
    CAPABILITIES,
    END_CALL_SCHEMA,
    OpenAIRealtimeProtocol,
    RealtimeConfig,
)
from bridge.engines.pipeline.engine import CAPABILITIES as PIPELINE_CAPABILITIES
from bridge.engines.pipeline.engine import PipelineConfig, PipelineEngine
from bridge.engines.pipeline.parts import (
    LanguageModel,
    Message,
    SpeechToText,
    TextToSpeech,
    ToolSchema,
)
from bridge.errors import ConfigError

EngineFactory = Callable[[Agent, RenderedAgent, Settings, str, str], tuple[EngineClient, str]]


def choose_format(carrier_format: str, engine_formats: tuple[str, ...]) -> str:
    """The carrier's format if the engine speaks it (no transcoding), else the engine's last."""
    return carrier_format if carrier_format in engine_formats else engine_formats[-1]


def _audio_format(agent: Agent, carrier_format: str, formats: tuple[str, ...], who: str) -> str:
    audio_format = agent.audio_format or choose_format(carrier_format, formats)
    if audio_format not in formats:
        raise ConfigError(
            f"agent {agent.name!r}: {who} does not take audio_format {audio_format!r}"
        )
    return audio_format


def _with_history(instructions: str, history: tuple[tuple[str, str], ...]) -> str:
    """Instructions for an engine taking over a call: the conversation so far is appended."""
    if not history:
        return instructions
    said = "\n".join(f"{'Caller' if role == 'user' else 'You'}: {text}" for role, text in history)
    return (
        f"{instructions}\n\nThis call was moved to you mid-conversation. "
        f"The conversation so far:\n{said}\nContinue from there; do not greet the caller again."
    )


def openai_realtime(
    agent: Agent, rendered: RenderedAgent, settings: Settings, carrier_format: str, call_id: str
) -> tuple[EngineClient, str]:
    audio_format = _audio_format(agent, carrier_format, CAPABILITIES.audio_formats, "OpenAI")
    protocol = OpenAIRealtimeProtocol(
        RealtimeConfig(
            model=agent.model,
            instructions=_with_history(rendered.instructions, rendered.history),
            voice=agent.voice,
            audio_format=audio_format,
            language=agent.language,
            transcription_model=agent.transcription_model,
            tools=[
                {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
                for t in (*agent.tools, *builtin_tools(agent))
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


def elevenlabs(
    agent: Agent, rendered: RenderedAgent, settings: Settings, carrier_format: str, call_id: str
) -> tuple[EngineClient, str]:
    spec = agent.elevenlabs
    if spec is None:
        raise ConfigError(f"agent {agent.name!r}: engine elevenlabs needs [elevenlabs] agent_id")
    formats = ELEVENLABS_CAPABILITIES.audio_formats
    audio_format = _audio_format(agent, carrier_format, formats, "ElevenLabs")
    config = ElevenLabsConfig(
        audio_format=audio_format,
        prompt=_with_history(rendered.instructions, rendered.history) or None,
        first_message=rendered.initial_message,
        language=agent.language,
        voice_id=spec.voice_id,
        overrides=spec.overrides,
        temperature=agent.temperature,
        dynamic_variables=dict(rendered.variables),
    )
    client = ElevenLabsClient(
        ElevenLabsProtocol(config),
        agent_id=spec.agent_id,
        base_url=settings.elevenlabs_url,
        api_key=settings.elevenlabs_api_key,
        private=spec.private,
        call_id=call_id,
    )
    return client, audio_format


def _stt(agent: Agent, settings: Settings, call_id: str) -> SpeechToText:
    spec = agent.stt or PartSpec("local")
    if spec.provider == "deepgram":
        from bridge.engines.pipeline.deepgram import DeepgramSTT, listen_url

        url = listen_url(
            spec.base_url or settings.deepgram_url,
            model=spec.model or "nova-3",
            language=agent.language,
            keywords=agent.keywords,
        )
        return DeepgramSTT(
            api_key=spec.api_key or settings.deepgram_api_key, url=url, call_id=call_id
        )
    from bridge.engines.pipeline.local_stt import PocketsphinxSTT

    phrases = list(agent.keywords)
    if agent.dialog is not None and (agent.llm is None or agent.llm.provider == "scripted"):
        phrases += agent.dialog.recognizer_phrases()
    return PocketsphinxSTT(phrases)


def _llm(agent: Agent, settings: Settings) -> LanguageModel:
    spec = agent.llm or PartSpec("scripted")
    if spec.provider == "openai":
        from bridge.engines.pipeline.openai_llm import OpenAIChatModel

        return OpenAIChatModel(
            base_url=spec.base_url or settings.openai_base_url,
            model=spec.model or "gpt-4o-mini",
            api_key=spec.api_key or settings.openai_api_key,
            temperature=agent.temperature,
        )
    from bridge.engines.pipeline.dialog import ScriptedModel

    if agent.dialog is None:
        raise ConfigError(f"agent {agent.name!r}: a scripted language model needs [dialog]")
    return ScriptedModel(agent.dialog)


def _tts(agent: Agent, settings: Settings) -> TextToSpeech:
    spec = agent.tts or PartSpec("local")
    if spec.provider == "elevenlabs":
        from bridge.engines.pipeline.elevenlabs_tts import DEFAULT_MODEL, ElevenLabsTTS

        return ElevenLabsTTS(
            api_key=spec.api_key or settings.elevenlabs_api_key,
            base_url=(spec.base_url or settings.elevenlabs_url).replace("ws", "http", 1),
            voice_id=spec.voice or agent.voice,
            model=spec.model or DEFAULT_MODEL,
            language=agent.language,
        )
    from bridge.engines.pipeline.local_tts import EspeakTTS

    # espeak-ng names its voices by language ("de", "fr", "en-gb"); English is "en-us"
    language = agent.language.lower()
    return EspeakTTS(voice=spec.voice or ("en-us" if language == "en" else language))


def pipeline(
    agent: Agent, rendered: RenderedAgent, settings: Settings, carrier_format: str, call_id: str
) -> tuple[EngineClient, str]:
    tools = [
        ToolSchema(t.name, t.description, dict(t.parameters))
        for t in (*agent.tools, *builtin_tools(agent))
    ]
    if agent.end_call_enabled:
        tools.append(
            ToolSchema(
                END_CALL_SCHEMA["name"],
                END_CALL_SCHEMA["description"],
                END_CALL_SCHEMA["parameters"],
            )
        )
    history: tuple[Message, ...] = tuple(
        {"role": "user" if role == "user" else "assistant", "content": text}
        for role, text in rendered.history
    )
    stt, llm, tts = _stt(agent, settings, call_id), _llm(agent, settings), _tts(agent, settings)
    config = PipelineConfig(
        instructions=rendered.instructions,
        tools=tuple(tools),
        endpointing=agent.endpointing_sensitivity,
        interrupt=agent.interrupt_sensitivity,
        history=history,
        names=(
            (agent.stt or PartSpec("local")).provider,
            (agent.llm or PartSpec("scripted")).provider,
            (agent.tts or PartSpec("local")).provider,
        ),
    )
    engine = PipelineEngine(config, stt=stt, llm=llm, tts=tts, call_id=call_id)
    return engine, _audio_format(
        agent, carrier_format, PIPELINE_CAPABILITIES.audio_formats, "pipeline"
    )


ENGINE_FACTORIES: dict[str, EngineFactory] = {
    "openai_realtime": openai_realtime,
    "elevenlabs": elevenlabs,
    "pipeline": pipeline,
}

ENGINE_FORMATS: dict[str, tuple[str, ...]] = {
    "openai_realtime": CAPABILITIES.audio_formats,
    "elevenlabs": ELEVENLABS_CAPABILITIES.audio_formats,
    "pipeline": PIPELINE_CAPABILITIES.audio_formats,
}


def preferred_format(agent: Agent) -> str:
    """The audio format to give this agent's engine when the carrier can speak any (a browser
    call): the agent's own ``audio_format``, else the engine's widest 16-bit PCM, else its
    first format (μ-law for engines that speak nothing else)."""
    if agent.audio_format:
        return agent.audio_format
    formats = ENGINE_FORMATS.get(agent.engine, ("pcmu",))
    pcm = [f for f in formats if f.startswith("pcm16/")]
    if pcm:
        return max(pcm, key=lambda f: int(f.partition("/")[2]))
    return formats[0]
