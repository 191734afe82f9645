"""An agent's voice, language and temperature reach every engine that takes them, on the wire.

Each engine is built from an :class:`~bridge.agents.model.Agent` by its factory (what a call
does), and what it sends is checked against the vendor's own types (OpenAI's SDK, the ConvAI
spec) or received by a fake vendor server (Deepgram, the chat model, ElevenLabs TTS).
"""

from __future__ import annotations

import json
from typing import Any

from bridge.agents.model import Agent, ElevenLabsSpec, PartSpec
from bridge.agents.template import render_agent
from bridge.config import Settings
from bridge.engines.elevenlabs.client import ElevenLabsClient
from bridge.engines.openai_realtime.client import OpenAIRealtimeClient
from bridge.engines.pipeline.engine import PipelineEngine
from bridge.engines.pipeline.local_tts import EspeakTTS
from bridge.runtime import engines
from bridge.session import actions as act
from bridge.session import events as ev
from tests.fakes.deepgram import FakeDeepgramServer
from tests.fakes.elevenlabs_schema import parse_client_message
from tests.fakes.elevenlabs_tts import FakeElevenLabsTTS
from tests.fakes.openai_chat import FakeChatLLM
from tests.fakes.openai_script import scripted
from tests.fakes.openai_validate import validate_client_event
from tests.waiting import until


def build(agent: Agent, settings: Settings | None = None) -> Any:
    factory = engines.ENGINE_FACTORIES[agent.engine]
    client, _ = factory(agent, render_agent(agent, {}), settings or Settings(), "pcmu", "c1")
    return client


def test_openai_realtime_gets_the_voice_and_the_language_but_no_temperature() -> None:
    agent = Agent(name="a", prompt_template="Hi.", voice="cedar", language="de", temperature=0.7)
    client = build(agent)
    assert isinstance(client, OpenAIRealtimeClient)
    (text,) = client.protocol.opening_messages()
    model = validate_client_event(json.loads(text))  # the SDK's GA types, no unknown key
    assert model.session.audio.output.voice == "cedar"
    assert model.session.audio.input.transcription.language == "de"
    assert "temperature" not in text  # the GA API removed it: it would be refused


def test_elevenlabs_gets_the_language_voice_and_temperature_it_is_allowed() -> None:
    overrides = ("prompt", "first_message", "language", "voice")
    agent = Agent(
        name="e",
        engine="elevenlabs",
        prompt_template="Hi.",
        language="de",
        temperature=0.3,
        elevenlabs=ElevenLabsSpec("agent_x", overrides=overrides, voice_id="voice_de"),
    )
    client = build(agent)
    assert isinstance(client, ElevenLabsClient)
    (text,) = client.protocol.opening_messages()
    parse_client_message(json.loads(text))  # the ConvAI spec, strictly
    sent = json.loads(text)
    assert sent["conversation_config_override"]["agent"]["language"] == "de"
    assert sent["conversation_config_override"]["tts"] == {"voice_id": "voice_de"}
    assert sent["custom_llm_extra_body"] == {"temperature": 0.3}


def test_the_local_voice_follows_the_language_unless_one_is_named() -> None:
    def voice(language: str, tts: PartSpec | None = None) -> str:
        llm = PartSpec("openai", api_key="sk")
        engine = build(Agent(name="p", engine="pipeline", language=language, llm=llm, tts=tts))
        assert isinstance(engine.tts, EspeakTTS)
        return engine.tts.voice

    assert voice("en") == "en-us"
    assert voice("de") == "de"
    assert voice("de", PartSpec("local", voice="en-gb")) == "en-gb"


async def test_the_pipeline_parts_get_language_voice_and_temperature() -> None:
    async with (
        FakeDeepgramServer(api_key="dg-test") as stt,
        FakeChatLLM(scripted("Gut."), api_key="sk-test") as llm,
        FakeElevenLabsTTS(api_key="xi-test", voices={"voice_de"}) as tts,
    ):
        settings = Settings(
            deepgram_url=stt.base_url,
            deepgram_api_key="dg-test",
            openai_base_url=llm.base_url,
            openai_api_key="sk-test",
            elevenlabs_url=tts.base_url,
            elevenlabs_api_key="xi-test",
        )
        agent = Agent(
            name="p",
            engine="pipeline",
            prompt_template="Sei freundlich.",
            voice="voice_de",
            language="de",
            temperature=0.2,
            stt=PartSpec("deepgram"),
            llm=PartSpec("openai"),
            tts=PartSpec("elevenlabs"),
        )
        engine = build(agent, settings)
        assert isinstance(engine, PipelineEngine)
        try:
            await engine.connect()
            await engine.send(act.CreateResponse(say="Hallo."))
            await engine.send(act.AddUserText("Wie spät ist es?"))
            await until(lambda: tts.requests, what="the greeting's speech")
            await engine.send(act.CreateResponse())
            await until(lambda: llm.requests and len(tts.requests) == 2, what="the answer")
            events = [e async for e in _until_done(engine, 2)]
        finally:
            await engine.close()

    (handshake,) = stt.handshakes
    assert handshake.query["language"] == ["de"]
    greeting, answer = tts.requests
    assert greeting.voice_id == answer.voice_id == "voice_de"
    assert greeting.body["text"] == "Hallo." and greeting.body["language_code"] == "de"
    (request,) = llm.requests
    assert request.body["temperature"] == 0.2
    said = [e.text for e in events if isinstance(e, ev.AgentTranscript)]
    assert said == ["Hallo.", "Gut."]


async def _until_done(engine: PipelineEngine, responses: int) -> Any:
    async for event in engine.events():
        yield event
        if isinstance(event, ev.ResponseDone):
            responses -= 1
            if not responses:
                return
