"""Whole calls through the cascaded engine: Deepgram STT → OpenAI-compatible LLM → ElevenLabs
TTS, each a fake speaking the vendor's wire protocol (validated with the vendor's SDK types),
with our local VAD running turns and barge-in."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Bridge, greeting, run_bridge, say
from tests.e2e.lines import GREETING, LONG, NO_REALTIME, PHRASES, QUESTION, silence
from tests.fakes.deepgram import FakeDeepgramServer
from tests.fakes.elevenlabs_tts import FakeElevenLabsTTS
from tests.fakes.openai_chat import FakeChatLLM
from tests.fakes.openai_script import Reply, scripted
from tests.speech import recognize_ulaw8k, synthesize_ulaw8k, word_ratio
from tests.waiting import until

pytestmark = pytest.mark.speech

SHIPPED = "Your order has shipped and will arrive on friday."
SAID = "What is the status of order a one two three four."
HEARD = [
    "thanks for calling acme how can i help you today",
    "your order has shipped and will arrive on friday",
    "okay",
    "sorry i did not catch that",
    "the weather in paris is sunny and warm",
]


def hear(ulaw: bytes) -> str:
    return recognize_ulaw8k(ulaw, grammar_words=HEARD)


@dataclass
class Vendors:
    stt: FakeDeepgramServer
    llm: FakeChatLLM
    tts: FakeElevenLabsTTS


@contextlib.asynccontextmanager
async def cascade(
    tmp_path: Path, responder: Any, tools_url: str = "http://127.0.0.1:9"
) -> AsyncIterator[tuple[Bridge, Vendors]]:
    async with (
        FakeDeepgramServer(api_key="dg-test", transcription_phrases=PHRASES) as stt,
        FakeChatLLM(responder, api_key="sk-test") as llm,
        FakeElevenLabsTTS(api_key="xi-test", voices={"voice_acme"}) as tts,
        run_bridge(
            tmp_path,
            NO_REALTIME,
            tools_url,
            deepgram_url=stt.base_url,
            deepgram_api_key="dg-test",
            openai_base_url=llm.base_url,
            elevenlabs_url=tts.base_url,
            elevenlabs_api_key="xi-test",
        ) as bridge,
    ):
        yield bridge, Vendors(stt, llm, tts)


async def test_cascaded_call_with_a_tool_round_trip(tmp_path: Path, tools: Any) -> None:
    service, tools_url = tools
    responder = scripted(Reply.call("lookup_order", {"order_id": "A1234"}), Reply.say(SHIPPED))
    async with cascade(tmp_path, responder, tools_url) as (bridge, vendors):
        caller = bridge.caller(agent="cascade", customer="Ada")
        async with caller.connect():
            greeted = hear(await greeting(caller, within_s=10))
            answer = hear(await say(caller, synthesize_ulaw8k(QUESTION) + silence(900)))
        assert caller.violations == []
        call = await bridge.call_record(caller.call_sid)

    assert word_ratio(greeted, GREETING) >= 0.8, greeted
    assert word_ratio(answer, SHIPPED) >= 0.8, answer
    # Deepgram got telephone audio as-is, with the agent's keyword boosted
    (handshake,) = [h for h in vendors.stt.handshakes if h.status == 101]
    assert handshake.query["encoding"] == ["mulaw"] and handshake.query["keyterm"] == ["Acme"]
    assert vendors.stt.audio_bytes[0] > 8000
    # the model saw the prompt, the greeting, the caller's words, then the tool's result
    first, second = vendors.llm.requests
    assert first.body["messages"][0]["content"].startswith("You are the receptionist of Acme")
    assert first.body["temperature"] == 0.4
    assert [t["function"]["name"] for t in first.body["tools"]] == ["lookup_order", "end_call"]
    user = [m["content"] for m in first.body["messages"] if m["role"] == "user"]
    assert user == [SAID]  # smart_format: capitalised, punctuated
    assert second.body["messages"][-1]["role"] == "tool"
    assert "shipped" in second.body["messages"][-1]["content"]
    (webhook,) = service.calls
    assert webhook["arguments"] == {"order_id": "A1234"}
    # ElevenLabs spoke the greeting and the answer in telephone μ-law
    spoken = [r.body["text"] for r in vendors.tts.requests]
    assert spoken == [GREETING, SHIPPED]
    assert all(r.query.get("output_format") == "ulaw_8000" for r in vendors.tts.requests)
    # the journal
    roles = [(t["role"], t["text"]) for t in call["transcript"]]
    assert roles == [("agent", GREETING), ("user", SAID), ("agent", SHIPPED)]
    assert call["tool_calls"][0]["ok"] is True


async def test_cascaded_barge_in_keeps_exactly_the_words_heard(tmp_path: Path) -> None:
    async with cascade(tmp_path, scripted(Reply.say(LONG), Reply.say("okay"))) as (
        bridge,
        vendors,
    ):
        caller = bridge.caller(agent="cascade")
        async with caller.connect():
            await greeting(caller, within_s=10)
            await caller.play(synthesize_ulaw8k(PHRASES[2]) + silence(900))
            start = len(caller.received_audio)
            await caller.wait_for_agent_audio(min_bytes=start + 12000, timeout=20, heard=True)
            await caller.play(synthesize_ulaw8k("stop please") + silence(900))
            await until(lambda: caller.clears, 10, "a clear")
            await until(lambda: len(vendors.llm.requests) == 2, 20, "the answer to stop")
            await caller.wait_until_quiet(quiet_s=1.0, timeout=20)
        assert caller.violations == []
        call = await bridge.call_record(caller.call_sid)

    (clear,) = caller.clears
    (barge,) = [e["data"] for e in call["events"] if e["kind"] == "barge_in"]
    heard_ms = (clear.played_bytes - start) / 8  # the greeting played in full before
    assert abs(barge["heard_ms"] - heard_ms) <= 20, (barge, heard_ms)
    assert barge["sent_ms"] > barge["heard_ms"] + 1000  # much more had been sent than heard
    long_turn = next(t for t in call["transcript"] if t["text"].startswith("let me"))
    assert long_turn["interrupted"] is True
    words = long_turn["text"].split()
    assert LONG.startswith(long_turn["text"]) and 3 <= len(words) < len(LONG.split()) / 2
    # the model's memory holds the same words: what the caller heard, not what was written
    remembered = [m for m in vendors.llm.requests[-1].body["messages"] if m["role"] == "assistant"]
    assert remembered[-1]["content"] == long_turn["text"]


async def test_deepgram_dying_hands_the_call_to_the_fallback_engine(tmp_path: Path) -> None:
    async with cascade(tmp_path, scripted(Reply.say("okay"))) as (bridge, vendors):
        caller = bridge.caller(agent="cascade")
        async with caller.connect():
            await greeting(caller, within_s=10)
            await vendors.stt.drop_connections(1011, "internal error")
            mark = len(caller.received_audio)
            await caller.play(silence(300) + synthesize_ulaw8k(QUESTION) + silence(900))
            await until(lambda: len(caller.received_audio) > mark + 16000, 20, "the backup answer")
            await caller.wait_until_quiet(quiet_s=0.8, timeout=20)
            answer = hear(bytes(caller.received_audio[mark:]))
        call = await bridge.call_record(caller.call_sid)

    assert word_ratio(answer, SHIPPED) >= 0.8, answer  # the offline agent's scripted answer
    (fallback,) = [e for e in call["events"] if e["kind"] == "engine_fallback"]
    assert "Deepgram closed the stream" in fallback["data"]["reason"]
    assert fallback["data"]["previous"] == "pipeline"
    ready = [e["time_in_call_secs"] for e in call["events"] if e["kind"] == "engine_ready"]
    assert len(ready) == 2 and ready[1] - fallback["time_in_call_secs"] < 1.0
    assert call["status"] == "completed"


async def test_a_failing_model_is_journaled_and_the_call_survives(tmp_path: Path) -> None:
    async with cascade(tmp_path, scripted(Reply.say("okay"))) as (bridge, vendors):
        caller = bridge.caller(agent="cascade")
        async with caller.connect():
            await greeting(caller, within_s=10)
            vendors.llm.fail_status, vendors.llm.fail_times = 500, 2  # one request, one retry
            await caller.play(synthesize_ulaw8k(QUESTION) + silence(900))
            await until(lambda: len(vendors.llm.requests) >= 2, 20, "the failed request")
            mark = len(caller.received_audio)
            await caller.play(synthesize_ulaw8k(QUESTION) + silence(900))
            await until(lambda: len(caller.received_audio) > mark + 2000, 20, "the answer")
            await caller.wait_until_quiet(quiet_s=0.6, timeout=15)
        call = await bridge.call_record(caller.call_sid)

    errors = [e["data"]["message"] for e in call["events"] if e["kind"] == "engine_error"]
    assert len(errors) == 1 and "InternalServerError" in errors[0]
    assert call["status"] == "completed"
    assert call["transcript"][-1]["text"] == "okay"


async def test_bad_input_from_deepgram_and_tts_is_survived_and_journaled(tmp_path: Path) -> None:
    async with cascade(tmp_path, scripted(Reply.say(SHIPPED), Reply.say("okay"))) as (
        bridge,
        vendors,
    ):
        caller = bridge.caller(agent="cascade")
        async with caller.connect():
            await greeting(caller, within_s=10)
            await vendors.stt.send_raw("{not json")
            await vendors.stt.send_unknown_type("BrandNewEvent")
            vendors.tts.fail_status, vendors.tts.fail_times = 500, 1
            await caller.play(synthesize_ulaw8k(QUESTION) + silence(900))
            await until(lambda: len(vendors.llm.requests) == 1, 20, "the first answer")
            mark = len(caller.received_audio)
            await caller.play(synthesize_ulaw8k(QUESTION) + silence(900))
            await until(lambda: len(caller.received_audio) > mark + 2000, 20, "the second answer")
            await caller.wait_until_quiet(quiet_s=0.6, timeout=15)
        call = await bridge.call_record(caller.call_sid)

    errors = [e["data"]["message"] for e in call["events"] if e["kind"] == "engine_error"]
    assert len(errors) == 1 and "ElevenLabs TTS: HTTP 500" in errors[0], errors
    assert call["status"] == "completed"
    users = [t["text"] for t in call["transcript"] if t["role"] == "user"]
    assert users == [SAID, SAID]  # Deepgram's junk lost no words
    assert call["transcript"][-1]["text"] == "okay"
