"""Whole calls through the real server: synthesized speech in, recognised speech out.

Caller (Twilio simulator with a playback clock) → /twilio/media → callbridge → fake OpenAI
Realtime (GA, validating every client event with the openai SDK's types; transcribing what it
hears with pocketsphinx; answering with espeak-ng speech) → back to the caller, whose received
audio is recognised again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import run_bridge
from tests.fakes.openai_realtime import FakeRealtimeServer
from tests.fakes.openai_script import Reply, scripted
from tests.speech import recognize_ulaw8k, synthesize_ulaw8k, word_ratio
from tests.waiting import until

pytestmark = pytest.mark.speech

GREETING = "Thanks for calling Acme. How can I help you today?"
SENTENCE = "hello I would like to book an appointment tomorrow"
REPLY = "sure I can book an appointment for tomorrow morning"
LONG = (
    "let me tell you about all of our services we offer plumbing heating and electrical work "
    "roofing painting and general repairs for homes and small businesses across the whole region "
    "and our team is available every day of the week"
)
PHRASES = [SENTENCE, "stop please", "what is the status of order a one two three four"]
SHIPPED = "your order has shipped and will arrive on friday"
# What the caller can hear, plus distractors: a grammar judge that still fails on wrong audio.
HEARD = [
    "thanks for calling acme how can i help you today",
    REPLY,
    SHIPPED,
    "okay",
    "thanks for calling goodbye",
    "sorry the line is busy please call again later",
    "your appointment is cancelled",
    "the weather in paris is sunny and warm",
]


def hear(ulaw: bytes) -> str:
    return recognize_ulaw8k(ulaw, grammar_words=HEARD)


def ulaw_silence(ms: int) -> bytes:
    return b"\xff" * (8 * ms)


def kinds(call: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in call["events"]]


async def test_spoken_call_round_trip(tmp_path: Path) -> None:
    async with (
        FakeRealtimeServer(scripted(Reply.say(REPLY)), transcription_phrases=PHRASES) as fake,
        run_bridge(tmp_path, fake.url) as bridge,
    ):
        caller = bridge.caller(agent="greeter", customer="Ada")
        async with caller.connect():
            # the agent speaks first
            await caller.wait_for_agent_audio(min_bytes=8000, timeout=10)
            await caller.wait_until_quiet(quiet_s=0.6, timeout=15)
            greeting_heard = hear(caller.played_ulaw())
            mark = len(caller.received_audio)
            await caller.play(synthesize_ulaw8k(SENTENCE) + ulaw_silence(800))
            await until(lambda: len(caller.received_audio) > mark + 16000, 20, "the reply")
            await caller.wait_until_quiet(quiet_s=0.6, timeout=15)
            reply_heard = hear(bytes(caller.received_audio[mark:]))
        assert caller.violations == []
        call = await bridge.call_record(caller.call_sid)

    assert word_ratio(greeting_heard, GREETING) >= 0.8, greeting_heard
    assert word_ratio(reply_heard, REPLY) >= 0.8, reply_heard
    assert call["status"] == "completed"
    assert call["end_reason"] == "caller hung up"
    assert call["agent"] == "greeter"
    assert call["context"] == {"agent": "greeter", "customer": "Ada"}
    turns = [(t["role"], t["text"]) for t in call["transcript"]]
    assert turns == [("agent", GREETING), ("user", SENTENCE.lower()), ("agent", REPLY)]
    times = [t["time_in_call_secs"] for t in call["transcript"]]
    assert times == sorted(times)
    assert times[1] > 1.0  # the caller spoke after the greeting
    assert {"started", "engine_ready", "ended"} <= set(kinds(call))
    # what the bridge sent was valid GA (checked by the fake on every event) and μ-law both ways
    (update,) = fake.received_of("session.update")
    assert update["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}


async def test_barge_in_is_exact(tmp_path: Path) -> None:
    async with (
        FakeRealtimeServer(
            scripted(Reply.say(LONG), Reply.say("okay")), transcription_phrases=PHRASES
        ) as fake,
        run_bridge(tmp_path, fake.url) as bridge,
    ):
        caller = bridge.caller(agent="listener")
        async with caller.connect():
            await caller.play(synthesize_ulaw8k(SENTENCE) + ulaw_silence(700))
            # let the caller hear 1.5 s of the long answer, then talk over it
            await caller.wait_for_agent_audio(min_bytes=12000, timeout=20, heard=True)
            await caller.play(synthesize_ulaw8k("stop please") + ulaw_silence(800))
            await until(lambda: caller.clears, 10, "a clear")
            await fake.wait_for("conversation.item.truncated", within_s=5)
            await caller.wait_until_quiet(quiet_s=1.0, timeout=20)
        assert caller.violations == []
        call = await bridge.call_record(caller.call_sid)

    (clear,) = caller.clears
    (truncation,) = fake.truncations
    long_item = next(iter(fake.items))
    assert truncation.item_id == long_item
    heard_ms = clear.played_bytes / 8  # nothing else was played before this answer
    assert abs(truncation.audio_end_ms - heard_ms) <= 20, (truncation.audio_end_ms, heard_ms)
    assert 1400 <= heard_ms <= 3000
    assert fake.items[long_item] / 8 > heard_ms + 1000  # much more had been sent than heard
    # the bridge cleared within 5 ms of getting speech_started
    cleared = [e for e in call["events"] if e["kind"] == "carrier_cleared"]
    assert len(cleared) == 1
    assert cleared[0]["data"]["latency_ms"] < 5
    # and across the processes' shared monotonic clock, the caller had it soon after
    assert clear.at - fake.speech_started_at[-1] < 0.05
    # no stale audio: after the clear only the new answer's bytes arrived
    after = sum(e.detail for e in caller.timeline if e.kind == "media" and e.at > clear.at)
    new_items = [n for item, n in fake.items.items() if item != long_item]
    assert after == sum(new_items)
    (barge,) = [e for e in call["events"] if e["kind"] == "barge_in"]
    assert barge["data"]["heard_ms"] == truncation.audio_end_ms
    agent_turns = [t for t in call["transcript"] if t["role"] == "agent"]
    assert agent_turns[0]["interrupted"] is True
    assert LONG.startswith(agent_turns[0]["text"])
    assert len(agent_turns[0]["text"]) < len(LONG) / 2


async def test_tool_call_reaches_the_webhook_and_the_answer_is_spoken(
    tmp_path: Path, tools: Any
) -> None:
    service, tools_url = tools
    responder = scripted(
        Reply.call("lookup_order", {"order_id": "A1234"}),
        Reply.say(SHIPPED),
    )
    async with (
        FakeRealtimeServer(responder, transcription_phrases=PHRASES) as fake,
        run_bridge(tmp_path, fake.url, tools_url) as bridge,
    ):
        caller = bridge.caller(agent="listener")
        async with caller.connect():
            await caller.play(
                synthesize_ulaw8k("what is the status of order a one two three four")
                + ulaw_silence(800)
            )
            await caller.wait_for_agent_audio(min_bytes=8000, timeout=20)
            await caller.wait_until_quiet(quiet_s=0.8, timeout=20)
            heard = hear(caller.played_ulaw())
        call = await bridge.call_record(caller.call_sid)

    assert service.bad_signatures == 0
    (request,) = service.calls
    assert request["tool"] == "lookup_order"
    assert request["arguments"] == {"order_id": "A1234"}
    assert request["call_id"] == call["id"]
    outputs = [
        e["item"]
        for e in fake.received_of("conversation.item.create")
        if e["item"]["type"] == "function_call_output"
    ]
    assert '"status":"shipped"' in outputs[0]["output"]
    assert word_ratio(heard, SHIPPED) >= 0.8, heard
    (tool_call,) = call["tool_calls"]
    assert tool_call["name"] == "lookup_order"
    assert tool_call["ok"] is True
    assert tool_call["arguments"] == {"order_id": "A1234"}
    assert {"tool_call", "tool_result"} <= set(kinds(call))


async def test_end_call_lets_the_agent_finish_its_sentence(tmp_path: Path) -> None:
    goodbye = "thanks for calling goodbye"
    responder = scripted(Reply.say_then_call(goodbye, "end_call", {"reason": "caller is done"}))
    async with (
        FakeRealtimeServer(responder, transcription_phrases=PHRASES) as fake,
        run_bridge(tmp_path, fake.url) as bridge,
    ):
        caller = bridge.caller(agent="listener")
        async with caller.connect():
            await caller.play(synthesize_ulaw8k(SENTENCE) + ulaw_silence(700))
            await asyncio.wait_for(caller.closed_by_bridge.wait(), 20)
            closed_at = time.monotonic()
        call = await bridge.call_record(caller.call_sid)

    (item,) = fake.items.values()
    # the whole goodbye was played before the line closed (its last chunk padded to 20 ms)
    assert len(caller.received_audio) == -(-item // 160) * 160
    assert closed_at >= caller.playback.idle_at() - 0.05
    assert hear(caller.played_ulaw()) == goodbye
    assert call["status"] == "completed"
    assert call["end_reason"] == "agent ended the call"
    (requested,) = [e["data"] for e in call["events"] if e["kind"] == "end_call_requested"]
    assert requested == {"reason": "caller is done"}
    # the model got its function output but was not asked for another response
    outputs = [
        e
        for e in fake.received_of("conversation.item.create")
        if e["item"]["type"] == "function_call_output"
    ]
    assert len(outputs) == 1
    assert fake.received_of("response.create") == []


async def test_transcoding_agent_round_trip(tmp_path: Path) -> None:
    """An agent that asks for PCM 24 kHz: μ-law 8k ↔ PCM16 24k through the bridge's resampler."""
    async with (
        FakeRealtimeServer(scripted(Reply.say(REPLY)), transcription_phrases=PHRASES) as fake,
        run_bridge(tmp_path, fake.url) as bridge,
    ):
        caller = bridge.caller(agent="hifi")
        async with caller.connect():
            await caller.play(synthesize_ulaw8k(SENTENCE) + ulaw_silence(800))
            await caller.wait_for_agent_audio(min_bytes=16000, timeout=20)
            await caller.wait_until_quiet(quiet_s=0.6, timeout=15)
        call = await bridge.call_record(caller.call_sid)
    (update,) = fake.received_of("session.update")
    pcm24 = {"type": "audio/pcm", "rate": 24000}
    assert update["session"]["audio"]["input"]["format"] == pcm24
    assert update["session"]["audio"]["output"]["format"] == pcm24
    (item_bytes,) = fake.items.values()
    # 24 kHz PCM16 is 48 bytes/ms, μ-law 8 bytes/ms: every millisecond arrived, none invented
    assert abs(len(caller.received_audio) - item_bytes / 6) <= 8 * 20
    assert hear(caller.played_ulaw()) == REPLY.lower()
    assert [t["text"] for t in call["transcript"]] == [SENTENCE.lower(), REPLY]
