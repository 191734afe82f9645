"""Bad input and dead peers over real sockets: the call survives or ends cleanly, the server
stays up, and the journal says what happened."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from bridge.simulate.wire import StreamEncoder
from tests.e2e.conftest import run_bridge
from tests.fakes.openai_realtime import FakeRealtimeServer
from tests.fakes.openai_script import Reply, scripted
from tests.speech import synthesize_ulaw8k
from tests.waiting import until


def events(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in call["events"] if e["kind"] == kind]


async def test_engine_dying_mid_call_ends_the_call_and_says_why(tmp_path: Path) -> None:
    async with FakeRealtimeServer() as fake, run_bridge(tmp_path, fake.url) as bridge:
        caller = bridge.caller(agent="listener")
        async with caller.connect():
            await fake.wait_connections(1)
            await fake.wait_for("session.updated")
            await fake.drop_connections(code=1011, reason="upstream exploded")
            await asyncio.wait_for(caller.closed_by_bridge.wait(), 5)
        call = await bridge.call_record(caller.call_sid)
        assert (await bridge.http.get("/healthz")).json()["status"] == "ok"
    assert call["status"] == "failed"
    assert call["end_reason"] == "engine closed: code 1011: upstream exploded"
    assert events(call, "error") == [{"message": "engine closed: code 1011: upstream exploded"}]


async def test_engine_refusing_the_handshake_fails_the_call(tmp_path: Path) -> None:
    async with (
        FakeRealtimeServer(refuse_status=500) as fake,
        run_bridge(tmp_path, fake.url) as bridge,
    ):
        caller = bridge.caller(agent="listener")
        async with caller.connect():
            await asyncio.wait_for(caller.closed_by_bridge.wait(), 10)
        call = await bridge.call_record(caller.call_sid)
    assert call["status"] == "failed"
    assert call["end_reason"].startswith("engine unavailable: Realtime handshake failed")
    assert "500" in call["end_reason"]


async def test_hanging_tool_webhook_times_out_and_the_model_is_told(
    tmp_path: Path, tools: Any
) -> None:
    service, tools_url = tools
    service.delay_s["lookup_order"] = 5.0
    responder = scripted(
        Reply.call("lookup_order", {"order_id": "A1"}), Reply.say("sorry I cannot look that up")
    )
    async with (
        FakeRealtimeServer(responder, realtime_factor=0) as fake,
        run_bridge(tmp_path, fake.url, tools_url) as bridge,
    ):
        caller = bridge.caller(agent="slow_tool")
        async with caller.connect():
            await caller.play(synthesize_ulaw8k("where is my order") + b"\xff" * 6400)
            await caller.wait_for_agent_audio(min_bytes=4000, timeout=15)
            # audio kept flowing while the tool hung: the caller's frames all reached the fake
        call = await bridge.call_record(caller.call_sid)
    (tool_call,) = call["tool_calls"]
    assert tool_call["ok"] is False
    assert 450 <= tool_call["duration_ms"] < 2000
    assert "no reply within" in json.loads(tool_call["output"])["error"]
    (output,) = [
        e["item"]["output"]
        for e in fake.received_of("conversation.item.create")
        if e["item"]["type"] == "function_call_output"
    ]
    assert "error" in json.loads(output)
    assert call["status"] == "completed"


async def test_dtmf_reaches_the_model_and_the_journal(tmp_path: Path) -> None:
    async with (
        FakeRealtimeServer(scripted("thank you")) as fake,
        run_bridge(tmp_path, fake.url) as bridge,
    ):
        caller = bridge.caller(agent="listener")
        async with caller.connect():
            await fake.wait_for("session.updated")
            for digit in "42#":
                await caller.send_dtmf(digit)
            await until(lambda: fake.user_texts, 5, "the digits at the fake")
        call = await bridge.call_record(caller.call_sid)
    assert fake.user_texts == ["The caller pressed these keys on the phone keypad: 42#"]
    assert [d["digit"] for d in events(call, "dtmf")] == ["4", "2", "#"]


async def test_missing_prompt_variable_is_a_clear_error(tmp_path: Path) -> None:
    async with FakeRealtimeServer() as fake, run_bridge(tmp_path, fake.url) as bridge:
        caller = bridge.caller(agent="needs_name")
        async with caller.connect():
            await asyncio.wait_for(caller.closed_by_bridge.wait(), 5)
        call = await bridge.call_record(caller.call_sid)
    assert fake.connections == 0
    assert call["status"] == "failed"
    assert call["end_reason"] == "agent 'needs_name' needs variables not provided: customer_name"


async def test_malformed_frames_are_logged_journaled_and_survived(tmp_path: Path) -> None:
    enc = StreamEncoder(stream_sid="MZbad", account_sid="ACbad", call_sid="CAbad")
    async with FakeRealtimeServer() as fake, run_bridge(tmp_path, fake.url) as bridge:
        async with connect(bridge.ws_url) as ws:
            await ws.send(enc.connected())
            await ws.send(enc.media(b"\xff" * 160))  # media before start
            await ws.send(enc.start({"agent": "listener"}))
            await ws.send("{this is not json")
            await ws.send('{"event":"surprise"}')
            await ws.send('{"event":"media","streamSid":"MZbad","media":{"payload":"%%%"}}')
            await ws.send(b"\x00\x01binary")
            await fake.wait_for("session.updated")
            await ws.send(enc.media(b"\x7f" * 160))  # the call still carries audio
            await fake.wait_for("input_audio_buffer.append", received=True)
            await ws.send(enc.stop())
            await ws.wait_closed()
        call = await bridge.call_record("CAbad")
        assert (await bridge.http.get("/healthz")).json()["status"] == "ok"
    messages = [d["message"].split(":")[0] for d in events(call, "protocol_error")]
    assert messages == [
        "media before start",
        "frame is not JSON",
        "unknown event 'surprise'",
        "media payload is not valid base64",
        "frame is not JSON",
    ]
    assert call["status"] == "completed"
    assert call["end_reason"] == "caller hung up"


async def test_stream_that_never_starts_is_journaled(tmp_path: Path) -> None:
    async with (
        FakeRealtimeServer() as fake,
        run_bridge(tmp_path, fake.url, start_timeout_s=0.3) as bridge,
    ):
        async with connect(bridge.ws_url) as ws:
            await ws.send('{"event":"connected","protocol":"Call","version":"1.0.0"}')
            await ws.wait_closed()
        await bridge.flush_journal()
        (summary,) = (await bridge.http.get("/v1/calls")).json()["calls"]
    assert summary["status"] == "failed"
    assert summary["end_reason"] == "no start message within the time limit"


async def test_over_capacity_calls_are_refused_cleanly(tmp_path: Path) -> None:
    async with FakeRealtimeServer() as fake, run_bridge(tmp_path, fake.url, max_calls=1) as bridge:
        first = bridge.caller(agent="listener")
        async with first.connect():
            await fake.wait_for("session.updated")
            async with connect(bridge.ws_url) as second:
                await asyncio.wait_for(second.wait_closed(), 5)
            assert second.close_code == 1013  # "try again later"
            assert second.close_reason == "callbridge is at capacity"
            assert not first.closed_by_bridge.is_set()  # the live call is untouched
        first_call = await bridge.call_record(first.call_sid)
        calls = (await bridge.http.get("/v1/calls")).json()["calls"]
    assert first_call["status"] == "completed"
    (rejected,) = [c for c in calls if c["status"] == "rejected"]
    assert rejected["end_reason"] == "rejected: capacity"
