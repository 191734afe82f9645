"""Whole calls through the ElevenLabs Agents engine: the real server, the fake ElevenLabs
(validating everything callbridge sends against the ConvAI spec), a Twilio caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import greeting, run_bridge, say
from tests.e2e.lines import GREETING, LONG, NO_REALTIME, PHRASES, QUESTION, silence
from tests.fakes.elevenlabs_agents import FakeElevenLabsAgents
from tests.fakes.openai_script import Reply, scripted
from tests.speech import recognize_ulaw8k, synthesize_ulaw8k, word_ratio
from tests.waiting import until

pytestmark = pytest.mark.speech

SHIPPED = "your order has shipped and will arrive on friday"
HEARD = [
    "thanks for calling acme how can i help you today",
    SHIPPED,
    "okay",
    "hello this is the backup line how can i help",
    "sorry i did not catch that",
    "the weather in paris is sunny and warm",
]


def hear(ulaw: bytes) -> str:
    return recognize_ulaw8k(ulaw, grammar_words=HEARD)


def kinds(call: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in call["events"]]


async def test_elevenlabs_call_with_a_tool_round_trip(tmp_path: Path, tools: Any) -> None:
    service, tools_url = tools
    responder = scripted(Reply.call("lookup_order", {"order_id": "A1234"}), Reply.say(SHIPPED))
    async with (
        FakeElevenLabsAgents(responder, transcription_phrases=PHRASES) as fake,
        run_bridge(tmp_path, NO_REALTIME, tools_url, elevenlabs_url=fake.http_url) as bridge,
    ):
        caller = bridge.caller(agent="eleven", customer="Ada")
        async with caller.connect():
            greeted = hear(await greeting(caller, within_s=10))
            answer = hear(await say(caller, synthesize_ulaw8k(QUESTION) + silence(800)))
        assert caller.violations == []
        call = await bridge.call_record(caller.call_sid)

    assert word_ratio(greeted, GREETING) >= 0.8, greeted
    assert word_ratio(answer, SHIPPED) >= 0.8, answer
    # what the bridge told ElevenLabs: the agent's prompt and first words, the call's variables
    (init,) = fake.inits
    agent = init["conversation_config_override"]["agent"]
    assert agent["prompt"]["prompt"].startswith("You are the receptionist of Acme")
    assert agent["first_message"] == GREETING
    assert fake.dynamic_variables[0]["customer"] == "Ada"
    # the tool went through the signed webhook and its answer back as client_tool_result
    (webhook,) = service.calls
    assert webhook["tool"] == "lookup_order" and webhook["arguments"] == {"order_id": "A1234"}
    (result,) = fake.tool_results
    assert result.is_error is False and "shipped" in (result.result or "")
    assert fake.pongs, "pings were answered"
    # the journal
    assert call["status"] == "completed"
    ready = next(e for e in call["events"] if e["kind"] == "engine_ready")
    assert ready["data"]["session_id"]  # ElevenLabs' conversation id, for their support
    roles = [(t["role"], t["text"]) for t in call["transcript"]]
    assert roles[0] == ("agent", GREETING)
    assert ("user", fake.user_transcripts[0]) in roles
    assert roles[-1][0] == "agent" and roles[-1][1].lower().startswith("your order has shipped")
    (tool_call,) = call["tool_calls"]
    assert tool_call["name"] == "lookup_order" and tool_call["ok"] is True


async def test_elevenlabs_barge_in_clears_drops_stale_audio_and_journals_the_correction(
    tmp_path: Path,
) -> None:
    async with (
        FakeElevenLabsAgents(
            scripted(Reply.say(LONG), Reply.say("okay")), transcription_phrases=PHRASES
        ) as fake,
        run_bridge(tmp_path, NO_REALTIME, elevenlabs_url=fake.http_url) as bridge,
    ):
        caller = bridge.caller(agent="eleven")
        async with caller.connect():
            await greeting(caller, within_s=10)
            await caller.play(synthesize_ulaw8k(PHRASES[2]) + silence(800))
            start = len(caller.received_audio)
            await until(lambda: len(caller.received_audio) > start + 12000, 20, "the long answer")
            await caller.play(synthesize_ulaw8k("stop please") + silence(800))
            await until(lambda: caller.clears, 10, "a clear")
            await until(lambda: fake.interruptions, 5, "the interruption")
            await caller.wait_until_quiet(quiet_s=1.0, timeout=20)
        assert caller.violations == []
        call = await bridge.call_record(caller.call_sid)

    (clear,) = caller.clears
    (barge,) = fake.interruptions
    assert barge.stale_event_ids, "the fake sent stale audio after the interruption"
    # no stale audio reached the caller: after the clear only the "okay" answer's bytes arrived
    after = sum(e.detail for e in caller.timeline if e.kind == "media" and e.at > clear.at)
    okay_bytes = fake.audio_sent[-1]
    assert after <= okay_bytes + 160, (after, okay_bytes)
    # the clear left the bridge at once
    (cleared,) = [e for e in call["events"] if e["kind"] == "carrier_cleared"]
    assert cleared["data"]["latency_ms"] < 5
    assert clear.at - barge.at < 0.05
    # the interrupted agent turn holds exactly the words ElevenLabs says were heard
    long_turn = next(t for t in call["transcript"] if t["text"].lower().startswith("let me"))
    assert long_turn["interrupted"] is True, (call["transcript"], kinds(call))
    assert long_turn["text"] == barge.corrected
    assert LONG.startswith(barge.corrected.lower().rstrip("."))


async def test_elevenlabs_bad_input_is_journaled_and_survived(tmp_path: Path) -> None:
    async with (
        FakeElevenLabsAgents(scripted(Reply.say("okay"))) as fake,
        run_bridge(tmp_path, NO_REALTIME, elevenlabs_url=fake.http_url) as bridge,
    ):
        caller = bridge.caller(agent="eleven")
        async with caller.connect():
            await caller.wait_for_agent_audio(min_bytes=8000, timeout=10)
            await fake.send_unknown_type("brand_new_event")
            await fake.send_unknown_type("brand_new_event")  # reported once
            await fake.send_raw("{not json")
            await fake.wait_quiet()
            await caller.wait_until_quiet(quiet_s=0.5, timeout=15)
            await fake.drop_connections(1011, "internal error")
            await until(caller.closed_by_bridge.is_set, 10, "the bridge to end the call")
        call = await bridge.call_record(caller.call_sid)

    errors = [e["data"] for e in call["events"] if e["kind"] == "engine_error"]
    assert [e["code"] for e in errors] == ["unknown_type", "protocol_error"]
    assert "brand_new_event" in errors[0]["message"]
    assert "not JSON" in errors[1]["message"]
    assert call["status"] == "failed"
    assert call["end_reason"] == "engine closed: code 1011: internal error"
    assert call["transcript"][0]["text"] == GREETING  # nothing said before was lost


async def test_elevenlabs_wrong_audio_format_ends_the_call_with_a_clear_reason(
    tmp_path: Path,
) -> None:
    async with (
        FakeElevenLabsAgents(scripted(), wrong_output_format="pcm_44100") as fake,
        run_bridge(tmp_path, NO_REALTIME, elevenlabs_url=fake.http_url) as bridge,
    ):
        caller = bridge.caller(agent="eleven")
        async with caller.connect():
            await until(caller.closed_by_bridge.is_set, 10, "the bridge to end the call")
        call = await bridge.call_record(caller.call_sid)
    assert call["status"] == "failed"
    assert "pcm_44100" in call["end_reason"] and "ulaw_8000" in call["end_reason"]


async def test_private_agent_uses_a_signed_url_and_falls_back_when_elevenlabs_dies(
    tmp_path: Path,
) -> None:
    async with (
        FakeElevenLabsAgents(
            scripted(), private_agents={"agent_private"}, api_key="xi-test", first_message="Hi."
        ) as fake,
        run_bridge(
            tmp_path,
            NO_REALTIME,
            elevenlabs_url=fake.http_url,
            elevenlabs_api_key="xi-test",
        ) as bridge,
    ):
        caller = bridge.caller(agent="eleven_private")
        async with caller.connect():
            await caller.wait_for_agent_audio(min_bytes=2000, timeout=10)
            await caller.wait_until_quiet(quiet_s=0.5, timeout=15)
            await fake.drop_connections(1011, "internal error")
            mark = len(caller.received_audio)
            await caller.play(silence(400) + synthesize_ulaw8k(QUESTION) + silence(900))
            await until(lambda: len(caller.received_audio) > mark + 16000, 20, "the backup answer")
            await caller.wait_until_quiet(quiet_s=0.8, timeout=20)
            answer = hear(bytes(caller.received_audio[mark:]))
        call = await bridge.call_record(caller.call_sid)

    assert fake.signed_url_requests, "the private agent was reached through a signed URL"
    (init,) = fake.inits
    assert set(init["conversation_config_override"]["agent"]) == {"prompt"}  # overrides = prompt
    assert word_ratio(answer, SHIPPED) >= 0.8, answer
    (fallback,) = [e for e in call["events"] if e["kind"] == "engine_fallback"]
    assert fallback["data"]["previous"] == "elevenlabs"
    assert fallback["data"]["engine"] == "pipeline"
    assert "1011" in fallback["data"]["reason"]
    ready = [e["time_in_call_secs"] for e in call["events"] if e["kind"] == "engine_ready"]
    assert len(ready) == 2
    assert ready[1] - fallback["time_in_call_secs"] < 1.0  # the backup took over within 1 s
    assert call["status"] == "completed"
    texts = [t["text"].lower() for t in call["transcript"]]
    assert "hello, this is the backup line" not in " ".join(texts)  # no second greeting
    assert any(t.startswith("your order has shipped") for t in texts)


async def test_override_the_elevenlabs_agent_does_not_allow_ends_the_call_clearly(
    tmp_path: Path,
) -> None:
    async with (
        FakeElevenLabsAgents(
            scripted(), allowed_overrides={"agent.prompt.prompt"}, check_violations=False
        ) as fake,
        run_bridge(tmp_path, NO_REALTIME, elevenlabs_url=fake.http_url) as bridge,
    ):
        caller = bridge.caller(agent="eleven")  # sends prompt and first_message overrides
        async with caller.connect():
            await until(caller.closed_by_bridge.is_set, 10, "the bridge to end the call")
        call = await bridge.call_record(caller.call_sid)
    assert call["status"] == "failed"
    assert call["end_reason"].startswith("engine closed: code 1008")
    assert "first_message" in call["end_reason"]
    assert [v.code for v in fake.take_violations()] == ["override_not_allowed"]
