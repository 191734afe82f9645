"""Browser calls end to end: a WebRTC caller (aiortc) against the real server and the offline
demo agent. What the caller says is recognised by the agent; what the agent says is recognised
again on the caller's side after Opus both ways."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.carrier_suite import GREETING_FIRST
from tests.e2e.conftest import Bridge
from tests.e2e.lines import silence
from tests.e2e.test_offline_engine import ASK_DAY, HEARD, demo_bridge
from tests.e2e.webrtc_caller import WebRTCCaller, loopback_ice
from tests.speech import recognize, synthesize_pcm, word_ratio
from tests.waiting import until

__all__ = ["loopback_ice"]


def http_url(bridge: Bridge) -> str:
    return bridge.url("", "http")


def hear(pcm8k: bytes) -> str:
    return recognize(pcm8k, 8000, grammar_words=[*HEARD, GREETING_FIRST])


async def test_browser_call_conversation(tmp_path: Path, loopback_ice: None) -> None:
    async with demo_bridge(tmp_path) as bridge:
        caller = WebRTCCaller(http_url(bridge), context={"caller_name": "Ada"})
        async with caller.connect():
            await caller.wait_for_voice(min_ms=1500, timeout=20)
            await caller.wait_until_quiet(0.8)
            greeting = hear(caller.heard())
            mark = len(caller.received)
            await caller.say(synthesize_pcm("I would like to book an appointment", 16000))
            await caller.say(bytes(32000))
            await caller.wait_for_voice(since=mark, min_ms=800)
            await caller.wait_until_quiet(0.8)
            answer = hear(caller.heard(mark))
            await caller.wait_channel_open()
            caller.hang_up()
            await until(caller.ended.is_set, 10, "the bridge to close the call")
        await bridge.flush_journal()
        call = (await bridge.http.get(f"/v1/calls/{caller.call_id}")).json()

    print(greeting, "|", answer, caller.answer["audio_format"])
    assert word_ratio(greeting, GREETING_FIRST) >= 0.8, greeting
    assert word_ratio(answer, ASK_DAY) >= 0.8, answer
    assert call["carrier"] == "webrtc"
    assert call["status"] == "completed", call
    users = [t["text"] for t in call["transcript"] if t["role"] == "user"]
    assert users and users[0].startswith("i would like to book an appointment"), users
