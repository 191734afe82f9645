"""Browser calls end to end: a WebRTC caller (aiortc) against the real server and the offline
demo agent. What the caller says is recognised by the agent; what the agent says is recognised
again on the caller's side after Opus both ways."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.carrier_suite import GREETING_FIRST
from tests.e2e.conftest import Bridge
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
        caller = WebRTCCaller(
            http_url(bridge), context={"caller_name": "Ada"}, headers=dict(bridge.http.headers)
        )
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


async def test_browser_call_barge_in_clears_the_agent(tmp_path: Path, loopback_ice: None) -> None:
    async with demo_bridge(tmp_path) as bridge:
        caller = WebRTCCaller(http_url(bridge), headers=dict(bridge.http.headers))
        async with caller.connect():
            await caller.wait_for_voice(min_ms=1500, timeout=20)
            await caller.wait_until_quiet(0.8)
            start = len(caller.received)
            await caller.say(synthesize_pcm("what are your opening hours", 16000))
            await caller.say(bytes(20000))
            await caller.wait_for_voice(since=start, min_ms=2000)
            first = next(at for offset, at in caller.voiced_at if offset >= start)
            talk = len(caller.received)
            await caller.say(synthesize_pcm("goodbye", 16000), wait=False)
            await until(caller.ended.is_set, 20, "the agent to hang up")
        await bridge.flush_journal()
        call = (await bridge.http.get(f"/v1/calls/{caller.call_id}")).json()

    (barge,) = [e["data"] for e in call["events"] if e["kind"] == "barge_in"]
    hours = next(t for t in call["transcript"] if t["text"].startswith("We are open"))
    assert hours["interrupted"] is True
    # what the caller received of the answer: voice from its first frame to the last one
    # before the goodbye's own answer began
    answer = [at for offset, at in caller.voiced_at if start <= offset and at >= first]
    cut = max(at for at in answer if at - first < barge["heard_ms"] / 1000 + 1.0)
    received_ms = (cut - first) * 1000
    print("heard", barge["heard_ms"], "received", received_ms, len(caller.received) - talk)
    assert abs(barge["heard_ms"] - received_ms) <= 100, (barge, received_ms)
    assert call["end_reason"] == "agent ended the call"
    assert {"type": "hangup", "reason": "the agent ended the call"} in caller.messages


async def test_browser_call_keys_and_bad_messages(tmp_path: Path, loopback_ice: None) -> None:
    """Keypad presses over the data channel reach the session as DTMF; what the browser sends
    that makes no sense is journaled and the call goes on."""
    async with demo_bridge(tmp_path) as bridge:
        caller = WebRTCCaller(http_url(bridge), headers=dict(bridge.http.headers))
        async with caller.connect():
            await caller.wait_channel_open()
            caller.send("this is not json")
            caller.send({"type": "dance"})
            caller.send({"type": "dtmf", "digit": "X"})
            for digit in "42#":
                caller.send({"type": "dtmf", "digit": digit})
            await caller.wait_for_voice(min_ms=500, timeout=20)
            await bridge.flush_journal()

            async def journaled() -> list[dict[str, object]]:
                await bridge.flush_journal()
                return list((await bridge.http.get(f"/v1/calls/{caller.call_id}")).json()["events"])

            for _ in range(100):
                events = await journaled()
                if sum(1 for e in events if e["kind"] == "dtmf") == 3:
                    break
                await asyncio.sleep(0.05)
            caller.hang_up()
            await until(caller.ended.is_set, 10, "the call to end")
        await bridge.flush_journal()
        call = (await bridge.http.get(f"/v1/calls/{caller.call_id}")).json()

    digits = [e["data"]["digit"] for e in call["events"] if e["kind"] == "dtmf"]
    assert digits == ["4", "2", "#"]
    errors = [e["data"]["message"] for e in call["events"] if e["kind"] == "protocol_error"]
    assert len(errors) == 3, errors
    assert any("unknown event 'unreadable'" in m or "unreadable" in m for m in errors), errors
    assert any("'dance'" in m for m in errors), errors
    assert any("'X'" in m for m in errors), errors
    assert call["status"] == "completed" and call["end_reason"] == "caller hung up", call


async def test_browser_that_vanishes_ends_the_call(tmp_path: Path, loopback_ice: None) -> None:
    async with demo_bridge(tmp_path) as bridge:
        caller = WebRTCCaller(http_url(bridge), headers=dict(bridge.http.headers))
        async with caller.connect():
            await caller.wait_for_voice(min_ms=300, timeout=20)
            await caller.close()  # no hang-up: the tab was closed
        services = bridge.app.state.services
        await until(lambda: caller.call_id not in services.live_calls, 40, "the call to end")
        await bridge.flush_journal()
        call = (await bridge.http.get(f"/v1/calls/{caller.call_id}")).json()
    print(call["end_reason"])
    assert call["ended_at"] is not None
    assert "browser" in call["end_reason"], call["end_reason"]


async def test_offer_errors(tmp_path: Path, loopback_ice: None) -> None:
    async with demo_bridge(tmp_path, max_calls=0) as bridge:
        bad_sdp = await bridge.http.post("/v1/webrtc/offer", json={"sdp": "v=0\r\nnonsense"})
        unknown = await bridge.http.post("/v1/webrtc/offer", json={"sdp": "v=0", "agent": "nobody"})
        answer = await bridge.http.post("/v1/webrtc/offer", json={"sdp": "x", "type": "answer"})
        full = await bridge.http.post(
            "/v1/webrtc/offer", json={"sdp": await offer_sdp(), "agent": "demo"}
        )
        await bridge.flush_journal()
        calls = (await bridge.http.get("/v1/calls")).json()["calls"]
    assert bad_sdp.status_code == 422 and "SDP" in bad_sdp.json()["detail"][0]["msg"], bad_sdp.text
    assert unknown.status_code == 422 and "nobody" in unknown.json()["detail"][0]["msg"]
    assert answer.status_code == 422
    assert full.status_code == 503 and full.json() == {"detail": "callbridge is at capacity"}
    assert [(c["carrier"], c["status"]) for c in calls] == [("webrtc", "rejected")]


async def offer_sdp() -> str:
    caller = WebRTCCaller("http://unused")
    await caller.pc.setLocalDescription(await caller.pc.createOffer())
    sdp = str(caller.pc.localDescription.sdp)
    await caller.close()
    return sdp
