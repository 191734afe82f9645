"""Plivo audio streams through the real server to the offline demo agent.

The caller is the Plivo wire (camelCase, numeric sequence numbers, ``extra_headers``, no stop
event: a hang-up closes the socket), played on the simulator's clock: checkpoints are answered
with ``playedStream`` when their audio has played, ``clearAudio`` with ``clearedAudio`` only.
The agent's hang-up goes to a fake Plivo REST API (Basic auth, ``204 No Content``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bridge.simulate.caller import SimulatedCaller
from bridge.simulate.carriers.plivo import PlivoWire
from tests.e2e import carrier_suite as suite
from tests.e2e.conftest import Bridge
from tests.e2e.lines import silence
from tests.fakes.plivo_api import FakePlivoApi
from tests.servers import serve
from tests.speech import synthesize_ulaw8k
from tests.waiting import until

pytestmark = pytest.mark.speech

AUTH_ID = "MAZDQ1ZJIYMDZKMMZKYM"
AUTH_TOKEN = "ZDQ1ZJIYMDZKMMZKYMQ1ZJIYMDZKMM"


def plivo_caller(
    bridge: Bridge, *, content_type: str = "audio/x-mulaw;rate=8000"
) -> SimulatedCaller:
    wire = PlivoWire(content_type=content_type)
    return SimulatedCaller(
        bridge.url("/plivo/media"), wire, custom_parameters={"caller_name": "Ada"}
    )


def call_id(caller: SimulatedCaller) -> str:
    assert isinstance(caller.wire, PlivoWire)
    return caller.wire.call_id


async def only_call(bridge: Bridge) -> dict[str, Any]:
    """The journal entry of the bridge's only call, once it has ended."""
    for _ in range(200):
        await bridge.flush_journal()
        calls = (await bridge.http.get("/v1/calls")).json()["calls"]
        if calls and calls[0]["ended_at"]:
            (call,) = calls
            return dict((await bridge.http.get(f"/v1/calls/{call['id']}")).json())
        await asyncio.sleep(0.05)
    raise AssertionError("the call never ended in the journal")


def api_settings(hostport: str) -> dict[str, str]:
    return {
        "plivo_auth_id": AUTH_ID,
        "plivo_auth_token": AUTH_TOKEN,
        "plivo_api_url": f"http://{hostport}",
    }


async def test_plivo_conversation_and_caller_hang_up(tmp_path: Path) -> None:
    """μ-law; the caller hangs up by closing the socket, so the REST API is left alone."""
    api = FakePlivoApi(AUTH_ID, AUTH_TOKEN)
    async with serve(api.app()) as hostport:
        call = await suite.conversation_call(
            tmp_path, plivo_caller, call_id, settings=api_settings(hostport)
        )
    assert call["context"]["caller_name"] == "Ada"  # from extra_headers
    assert call["end_reason"] == "carrier closed the stream"
    assert call["status"] == "completed"
    assert api.hangups == [] and api.problems == []


async def test_plivo_conversation_in_l16_16k(tmp_path: Path) -> None:
    def caller(bridge: Bridge) -> SimulatedCaller:
        return plivo_caller(bridge, content_type="audio/x-l16;rate=16000")

    call = await suite.conversation_call(tmp_path, caller, call_id)
    assert call["call_sid"] == call["call_sid"].lower() and len(call["call_sid"]) == 36


async def test_plivo_barge_in_heard_audio_is_exact(tmp_path: Path) -> None:
    """Checkpoints follow every 20 ms chunk and the session interpolates between their
    answers: the default 20 ms tolerance (one chunk) holds, as on Twilio."""
    await suite.barge_in_call(tmp_path, plivo_caller, call_id)


async def test_plivo_dtmf(tmp_path: Path) -> None:
    await suite.dtmf_call(tmp_path, plivo_caller, call_id)


async def test_plivo_agent_hang_up_goes_through_the_rest_api(tmp_path: Path) -> None:
    api = FakePlivoApi(AUTH_ID, AUTH_TOKEN)
    async with serve(api.app()) as hostport:

        def caller(bridge: Bridge) -> SimulatedCaller:
            made = plivo_caller(bridge)
            api.live_calls.add(call_id(made))
            return made

        call, made = await suite.hangup_by_agent_call(
            tmp_path, caller, call_id, settings=api_settings(hostport)
        )

    assert api.problems == []
    assert api.hangups == [call_id(made)]
    assert api.live_calls == set()
    assert made.hung_up_by_bridge is None  # Plivo's stream has no in-band hang-up
    assert not any(e["kind"] == "carrier_error" for e in call["events"])


async def test_plivo_hang_up_failure_is_journaled_and_the_call_still_ends(
    tmp_path: Path,
) -> None:
    api = FakePlivoApi(AUTH_ID, AUTH_TOKEN, fail_with=500)
    async with (
        serve(api.app()) as hostport,
        suite.demo_bridge(tmp_path, **api_settings(hostport)) as bridge,
    ):
        caller = plivo_caller(bridge)
        async with caller.connect():
            await caller.wait_for_agent_audio(min_bytes=8000, timeout=15)
            await caller.play(synthesize_ulaw8k("goodbye") + silence(900))
            await until(caller.closed_by_bridge.is_set, 30, "the agent to hang up")
        call = await bridge.call_record(call_id(caller))
    (error,) = [e for e in call["events"] if e["kind"] == "carrier_error"]
    assert "Plivo hang-up: HTTP 500" in error["data"]["message"]
    assert call["status"] == "completed"
    assert call["end_reason"] == "agent ended the call"
    assert api.problems == []


async def test_plivo_unsupported_format_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    async with suite.demo_bridge(tmp_path) as bridge:
        async with connect(bridge.url("/plivo/media")) as ws:
            start = {
                "callId": "4e5d33b6-4b1f-4f3e-9f0c-5a3c1d2e7f80",
                "streamId": "b9f1b7a4-5e0c-4f3d-8c2a-1d9e6f4a2b31",
                "accountId": AUTH_ID,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 24000},
            }
            await ws.send(json.dumps({"event": "start", "sequenceNumber": 1, "start": start}))
        # no stop event on Plivo: closing the socket is all the bridge gets
        detail = await only_call(bridge)
    assert detail["status"] == "failed"
    messages = [e["data"]["message"] for e in detail["events"] if e["kind"] == "protocol_error"]
    assert any("'audio/x-l16' at 24000 Hz is not supported" in m for m in messages), messages
    assert any("<Stream contentType>" in m for m in messages), messages
