"""Telnyx media streams through the real server to the offline demo agent.

The caller is the Telnyx wire (snake_case, string sequence numbers, ``client_state``), played on
the simulator's clock, with every pair of media chunks swapped in transit. The agent's hang-up
goes to a fake Telnyx Call Control API; the SDK's own client is checked against that fake.
"""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from bridge.simulate.caller import SimulatedCaller
from bridge.simulate.carriers.telnyx import TelnyxWire
from tests.e2e import carrier_suite as suite
from tests.e2e.conftest import Bridge
from tests.e2e.lines import silence
from tests.fakes.telnyx_api import FakeTelnyxApi
from tests.servers import serve
from tests.speech import synthesize_ulaw8k
from tests.waiting import until

pytestmark = pytest.mark.speech

API_KEY = "KEY0123456789TEST"


def telnyx_caller(bridge: Bridge, *, reorder: bool = True) -> SimulatedCaller:
    wire = TelnyxWire(reorder=reorder)
    return SimulatedCaller(
        bridge.url("/telnyx/media"), wire, custom_parameters={"caller_name": "Ada"}
    )


def call_control_id(caller: SimulatedCaller) -> str:
    assert isinstance(caller.wire, TelnyxWire)
    return caller.wire.call_control_id


async def test_telnyx_conversation_with_chunks_out_of_order(tmp_path: Path) -> None:
    call = await suite.conversation_call(tmp_path, telnyx_caller, call_control_id)
    assert call["call_sid"].startswith("v3:")
    assert call["from_number"] == "+15550100001"
    assert call["to_number"] == "+15550100002"
    assert call["context"]["caller_name"] == "Ada"  # from client_state
    assert call["end_reason"] == "Telnyx stopped the stream"


async def test_telnyx_barge_in_heard_audio_is_exact(tmp_path: Path) -> None:
    await suite.barge_in_call(tmp_path, telnyx_caller, call_control_id)


async def test_telnyx_dtmf(tmp_path: Path) -> None:
    await suite.dtmf_call(tmp_path, telnyx_caller, call_control_id)


async def test_telnyx_agent_hang_up_goes_through_call_control(tmp_path: Path) -> None:
    api = FakeTelnyxApi(api_key=API_KEY)
    async with serve(api.app()) as hostport:

        def caller(bridge: Bridge) -> SimulatedCaller:
            made = telnyx_caller(bridge)
            api.live_calls.add(call_control_id(made))
            return made

        settings = {"telnyx_api_key": API_KEY, "telnyx_api_url": f"http://{hostport}"}
        call, made = await suite.hangup_by_agent_call(
            tmp_path, caller, call_control_id, settings=settings
        )

    assert api.problems == []
    ((hung_up, body),) = api.hangups
    assert hung_up == call_control_id(made)
    assert body["command_id"].startswith("hangup-")
    assert not any(e["kind"] == "carrier_error" for e in call["events"])


async def test_telnyx_hang_up_failure_is_journaled_and_the_call_still_ends(
    tmp_path: Path,
) -> None:
    api = FakeTelnyxApi(api_key=API_KEY, fail_with=500)
    async with (
        serve(api.app()) as hostport,
        suite.demo_bridge(
            tmp_path, telnyx_api_key=API_KEY, telnyx_api_url=f"http://{hostport}"
        ) as bridge,
    ):
        caller = telnyx_caller(bridge, reorder=False)
        async with caller.connect():
            await caller.wait_for_agent_audio(min_bytes=8000, timeout=15)
            await caller.play(synthesize_ulaw8k("goodbye") + silence(900))
            await until(caller.closed_by_bridge.is_set, 30, "the agent to hang up")
        call = await bridge.call_record(call_control_id(caller))
    (error,) = [e for e in call["events"] if e["kind"] == "carrier_error"]
    assert "HTTP 500" in error["data"]["message"]
    assert call["status"] == "completed"


async def test_telnyx_sdk_client_works_against_the_fake_api() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from telnyx import AsyncTelnyx, UnprocessableEntityError

    api = FakeTelnyxApi(api_key=API_KEY, live_calls={"v3:abc"})
    async with serve(api.app()) as hostport:
        client = AsyncTelnyx(api_key=API_KEY, base_url=f"http://{hostport}/v2", max_retries=0)
        result = await client.calls.actions.hangup("v3:abc", command_id="c1")
        assert result.data is not None and result.data.result == "ok"
        with pytest.raises(UnprocessableEntityError):
            await client.calls.actions.hangup("v3:abc")  # already ended
        await client.close()
    assert api.hangups == [("v3:abc", {"command_id": "c1"}), ("v3:abc", {})]


async def test_telnyx_codec_refuses_l16_with_a_clear_reason(tmp_path: Path) -> None:
    async with suite.demo_bridge(tmp_path) as bridge:
        async with connect(bridge.url("/telnyx/media")) as ws:
            state = base64.b64encode(b"{}").decode()
            await ws.send(json.dumps({"event": "connected", "version": "1.0.0"}))
            start = {
                "call_control_id": "v3:l16",
                "client_state": state,
                "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1},
            }
            await ws.send(
                json.dumps(
                    {"event": "start", "sequence_number": "1", "start": start, "stream_id": "s"}
                )
            )
            await until(lambda: ws.close_code is not None, 2, "the bridge to close at once")
        await bridge.flush_journal()
        (call,) = (await bridge.http.get("/v1/calls")).json()["calls"]
        detail = (await bridge.http.get(f"/v1/calls/{call['id']}")).json()
    assert detail["status"] == "failed"
    assert detail["end_reason"].startswith("start refused: Telnyx codec L16 is not supported")
    messages = [e["data"]["message"] for e in detail["events"] if e["kind"] == "protocol_error"]
    assert any("L16 is not supported" in m for m in messages), messages
