"""jambonz ``listen`` (streaming bidirectional audio) through the real server to the offline demo
agent.

The caller is the jambonz wire: subprotocol ``audio.jambonz.org``, the call-attributes frame with
the verb's metadata merged in, binary L16 both ways, ``mark`` answered with ``playout`` when the
audio before it has played (``cleared`` after ``killAudio``), and — as in jambonz's
``mod_audio_fork`` — at most 30 marks tracked, the rest silently dropped. The bridge must keep
within that (its link holds frames until answers make room), never send the sample -1 (jambonz's
in-band mark), and end the call with ``disconnect``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from bridge.simulate.caller import SimulatedCaller
from bridge.simulate.carriers.jambonz import MAX_MARKS, JambonzWire
from tests.e2e import carrier_suite as suite
from tests.e2e.conftest import Bridge

pytestmark = pytest.mark.speech


def jambonz_caller(
    bridge: Bridge, *, sample_rate: int = 8000, nested_metadata: bool = False
) -> SimulatedCaller:
    wire = JambonzWire(sample_rate=sample_rate, nested_metadata=nested_metadata)
    return SimulatedCaller(
        bridge.url("/jambonz/media"), wire, custom_parameters={"caller_name": "Ada"}
    )


def call_sid(caller: SimulatedCaller) -> str:
    return jambonz(caller).call_sid


def jambonz(caller: SimulatedCaller) -> JambonzWire:
    wire = caller.wire
    assert isinstance(wire, JambonzWire)
    return wire


def kept_to_the_mark_limit(caller: SimulatedCaller) -> JambonzWire:
    """The bridge never had more marks pending than jambonz tracks, yet filled them."""
    wire = jambonz(caller)
    assert wire.marks_dropped == 0
    assert wire.most_marks == MAX_MARKS  # the greeting alone is far longer than 30 × 20 ms
    return wire


async def test_jambonz_conversation(tmp_path: Path) -> None:
    made: list[SimulatedCaller] = []

    def caller(bridge: Bridge) -> SimulatedCaller:
        made.append(jambonz_caller(bridge))
        return made[-1]

    call = await suite.conversation_call(tmp_path, caller, call_sid)
    assert call["from_number"] == "+15550100001"
    assert call["to_number"] == "+15550100002"
    assert call["context"]["caller_name"] == "Ada"  # the verb's metadata
    assert call["context"]["direction"] == "inbound"  # a call attribute
    assert call["end_reason"] == "carrier closed the stream"  # jambonz closes: caller hung up
    kept_to_the_mark_limit(made[0])


async def test_jambonz_conversation_at_16_khz_with_nested_metadata(tmp_path: Path) -> None:
    call = await suite.conversation_call(
        tmp_path, lambda b: jambonz_caller(b, sample_rate=16000, nested_metadata=True), call_sid
    )
    assert call["context"]["caller_name"] == "Ada"


async def test_jambonz_barge_in_heard_audio_is_exact(tmp_path: Path) -> None:
    # jambonz answers a mark when playout reaches it — on the caller's clock here — so the heard
    # figure has the same 20 ms bound as Twilio's marks, even though the link keeps only 30
    # marks (600 ms) at jambonz and sends the rest as answers come back.
    made: list[SimulatedCaller] = []

    def caller(bridge: Bridge) -> SimulatedCaller:
        made.append(jambonz_caller(bridge))
        return made[-1]

    call = await suite.barge_in_call(tmp_path, caller, call_sid, tolerance_ms=20)
    kept_to_the_mark_limit(made[0])
    (barge,) = [e["data"] for e in call["events"] if e["kind"] == "barge_in"]
    print(f"jambonz barge-in: heard {barge['heard_ms']} ms of {barge['sent_ms']} ms sent")


async def test_jambonz_dtmf(tmp_path: Path) -> None:
    await suite.dtmf_call(tmp_path, jambonz_caller, call_sid)


async def test_jambonz_agent_hang_up_sends_disconnect(tmp_path: Path) -> None:
    _, caller = await suite.hangup_by_agent_call(tmp_path, jambonz_caller, call_sid)
    assert caller.hung_up_by_bridge == "disconnect"
    assert jambonz(caller).disconnected
    kept_to_the_mark_limit(caller)


async def test_jambonz_subprotocol_is_selected_when_offered_and_optional(tmp_path: Path) -> None:
    attributes = {"sampleRate": 8000, "mixType": "mono", "callSid": "cs-sub", "from": "+1555"}
    async with suite.demo_bridge(tmp_path) as bridge:
        for offered, chosen in (
            (["audio.jambonz.org"], "audio.jambonz.org"),
            (["audio.drachtio.org"], "audio.drachtio.org"),
            (None, None),
        ):
            protocols = [Subprotocol(p) for p in offered] if offered else None
            async with connect(bridge.url("/jambonz/media"), subprotocols=protocols) as ws:
                assert ws.subprotocol == chosen
                await ws.send(json.dumps(attributes))
                first = await asyncio.wait_for(ws.recv(), 15)  # the greeting's first audio
                assert isinstance(first, bytes)


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"sampleRate": 48000, "mixType": "mono"}, "sampleRate 48000 is not supported"),
        ({"sampleRate": 8000, "mixType": "stereo"}, "mixType 'stereo' is not supported"),
    ],
)
async def test_jambonz_unsupported_stream_is_refused_with_a_clear_reason(
    tmp_path: Path, attributes: dict[str, Any], reason: str
) -> None:
    async with suite.demo_bridge(tmp_path) as bridge:
        protocols = [Subprotocol("audio.jambonz.org")]
        async with connect(bridge.url("/jambonz/media"), subprotocols=protocols) as ws:
            await ws.send(json.dumps({**attributes, "callSid": "cs-bad"}))
            await ws.send(b"\x00" * 1920)
        call = await only_call(bridge)
    assert call["status"] == "failed"
    messages = [e["data"]["message"] for e in call["events"] if e["kind"] == "protocol_error"]
    assert any(reason in m for m in messages), messages


async def only_call(bridge: Bridge) -> dict[str, Any]:
    """The journal entry of the one call the bridge had, once it has finished."""
    for _ in range(100):
        await bridge.flush_journal()
        calls = (await bridge.http.get("/v1/calls")).json()["calls"]
        if calls and calls[0]["ended_at"]:
            return dict((await bridge.http.get(f"/v1/calls/{calls[0]['id']}")).json())
        await asyncio.sleep(0.05)
    raise AssertionError("the call never finished in the journal")
