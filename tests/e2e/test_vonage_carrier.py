"""Vonage Voice API websockets through the real server to the offline demo agent.

The caller is the Vonage wire: a ``websocket:connected`` text frame with the NCCO headers
flattened in, 20 ms binary L16 frames both ways (16 kHz by default), ``notify`` answered once
the audio before it has played on the simulator's clock, ``websocket:cleared`` after a clear.
Vonage has no in-band hang-up: the bridge ends the call by closing the socket.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bridge.simulate.caller import SimulatedCaller
from bridge.simulate.carriers.vonage import VonageWire
from tests.e2e import carrier_suite as suite
from tests.e2e.conftest import Bridge, greeting
from tests.waiting import until

pytestmark = pytest.mark.speech


def vonage_caller(
    bridge: Bridge, *, rate: int = 16000, nested_dtmf: bool = False
) -> SimulatedCaller:
    wire = VonageWire(rate=rate, nested_dtmf=nested_dtmf)
    return SimulatedCaller(
        bridge.url("/vonage/media"), wire, custom_parameters={"caller_name": "Ada"}
    )


def call_uuid(caller: SimulatedCaller) -> str:
    assert isinstance(caller.wire, VonageWire)
    return caller.wire.uuid


async def test_vonage_conversation_at_16_khz(tmp_path: Path) -> None:
    call = await suite.conversation_call(tmp_path, vonage_caller, call_uuid)
    assert call["from_number"] == "447700900001"
    assert call["to_number"] == "447700900002"
    assert call["context"]["caller_name"] == "Ada"  # an NCCO header
    assert call["end_reason"] == "carrier closed the stream"  # the caller hung up


async def test_vonage_conversation_at_8_khz(tmp_path: Path) -> None:
    await suite.conversation_call(tmp_path, lambda b: vonage_caller(b, rate=8000), call_uuid)


async def test_vonage_barge_in_heard_audio_is_exact(tmp_path: Path) -> None:
    # Vonage answers each notify when the 20 ms frame before it has played, on the caller's
    # clock, and the ledger places the cut within the frame by the time since that answer:
    # the same 20 ms bound as Twilio's marks. The 16 kHz → 8 kHz conversion in the wire keeps
    # byte counts exact (every 20 ms frame in gives one out).
    call = await suite.barge_in_call(tmp_path, vonage_caller, call_uuid, tolerance_ms=20)
    (barge,) = [e["data"] for e in call["events"] if e["kind"] == "barge_in"]
    print(f"Vonage barge-in: heard {barge['heard_ms']} ms of {barge['sent_ms']} ms sent")


async def test_vonage_dtmf_in_both_shapes(tmp_path: Path) -> None:
    await suite.dtmf_call(tmp_path, vonage_caller, call_uuid)
    await suite.dtmf_call(tmp_path, lambda b: vonage_caller(b, nested_dtmf=True), call_uuid)


async def test_vonage_agent_hang_up_closes_the_socket(tmp_path: Path) -> None:
    _, caller = await suite.hangup_by_agent_call(tmp_path, vonage_caller, call_uuid)
    assert caller.hung_up_by_bridge is None  # Vonage has no in-band hang-up
    assert caller.close_code == 1000  # the socket closed: the NCCO connect action ends
    wire = caller.wire
    assert isinstance(wire, VonageWire) and wire.notifies > 0


async def test_vonage_unsupported_content_type_is_refused_with_a_clear_reason(
    tmp_path: Path,
) -> None:
    async with suite.demo_bridge(tmp_path) as bridge:
        async with connect(bridge.url("/vonage/media")) as ws:
            await ws.send(
                json.dumps({"event": "websocket:connected", "content-type": "audio/l16;rate=44100"})
            )
            await ws.send(b"\x00" * 1764)  # audio that cannot count: no call started
        call = await only_call(bridge)
    assert call["status"] == "failed"
    messages = [e["data"]["message"] for e in call["events"] if e["kind"] == "protocol_error"]
    assert any("'audio/l16;rate=44100' is not supported" in m for m in messages), messages


async def test_vonage_unknown_event_is_journaled_and_the_call_goes_on(tmp_path: Path) -> None:
    async with suite.demo_bridge(tmp_path) as bridge:
        caller = vonage_caller(bridge)
        async with caller.connect():
            await greeting(caller)
            assert caller._ws is not None
            await caller._ws.send('{"event":"websocket:surprise"}')
            await caller._ws.send('{"event":"websocket:media:update","mute":false}')
            await caller.send_dtmf("9")
            await until(lambda: any(e.kind == "dtmf" for e in caller.timeline), 5, "the key")
        call = await bridge.call_record(call_uuid(caller))
    assert caller.violations == []
    assert call["status"] == "completed"
    messages = [e["data"]["message"] for e in call["events"] if e["kind"] == "protocol_error"]
    assert messages == ["unknown Vonage event 'websocket:surprise'"]
    assert [e["data"]["digit"] for e in call["events"] if e["kind"] == "dtmf"] == ["9"]


async def only_call(bridge: Bridge) -> dict[str, Any]:
    """The journal entry of the one call the bridge had, once it has finished."""
    for _ in range(100):
        await bridge.flush_journal()
        calls = (await bridge.http.get("/v1/calls")).json()["calls"]
        if calls and calls[0]["ended_at"]:
            return dict((await bridge.http.get(f"/v1/calls/{calls[0]['id']}")).json())
        await asyncio.sleep(0.05)
    raise AssertionError("the call never finished in the journal")
