"""The simulated caller's jambonz wire: the attributes frame, strict command parsing, the
30-mark limit, the -1 sample check, and mark answers on a real simulated call."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from bridge.errors import CarrierProtocolError
from bridge.simulate.caller import SimulatedCaller
from bridge.simulate.carriers.base import BridgeClear, BridgeHangup, BridgeMark, BridgeMedia
from bridge.simulate.carriers.jambonz import MAX_MARKS, JambonzWire
from tests.waiting import until


def test_attributes_frame_merges_the_metadata_at_the_top_level() -> None:
    wire = JambonzWire(sample_rate=16000, call_sid="cs-1")
    (frame,) = wire.opening({"agent": "demo"})
    body = json.loads(frame)
    assert list(body)[:2] == ["sampleRate", "mixType"]
    assert (body["sampleRate"], body["mixType"], body["callSid"]) == (16000, "mono", "cs-1")
    assert (body["from"], body["to"], body["agent"]) == ("+15550100001", "+15550100002", "demo")
    nested = json.loads(JambonzWire(nested_metadata=True).opening({"agent": "demo"})[0])
    assert nested["metadata"] == {"agent": "demo"} and "agent" not in nested
    assert JambonzWire.subprotocols == ("audio.jambonz.org",)
    with pytest.raises(ValueError, match="8, 16 or 24 kHz, not 48000"):
        JambonzWire(sample_rate=48000)


def test_caller_frames_dtmf_and_hangup() -> None:
    wire = JambonzWire()
    frame = wire.media(b"\xff" * 160)
    assert isinstance(frame, bytes) and len(frame) == 320
    assert json.loads(wire.dtmf("3")) == {"event": "dtmf", "dtmf": "3", "duration": "1600"}
    assert wire.hangup() is None


def test_marks_are_answered_played_or_cleared_and_clear_marks_forgets_them() -> None:
    wire = JambonzWire()
    assert wire.parse('{"type":"mark","data":{"name":"m1"}}') == [BridgeMark("m1")]
    assert wire.parse('{"type":"mark","data":{"name":"m2"}}') == [BridgeMark("m2")]
    played = wire.mark_played("m1")
    assert isinstance(played, str)
    assert json.loads(played) == {"type": "mark", "data": {"name": "m1", "event": "playout"}}
    assert wire.parse('{"type":"killAudio"}') == [BridgeClear()]
    (cleared,) = wire.cleared(["m2"])
    assert json.loads(cleared) == {"type": "mark", "data": {"name": "m2", "event": "cleared"}}
    assert wire.parse('{"type":"mark","data":{"name":"m3"}}') == [BridgeMark("m3")]
    assert wire.parse('{"type":"clearMarks"}') == []
    assert wire.mark_played("m3") is None  # forgotten: never answered
    assert wire.cleared(["m3"]) == []
    assert wire.mark_played("m9") is not None  # not tracked (never happens): answered anyway


def test_jambonz_tracks_at_most_30_marks_and_drops_the_rest() -> None:
    wire = JambonzWire()
    for n in range(MAX_MARKS + 5):
        out = wire.parse(json.dumps({"type": "mark", "data": {"name": f"m{n}"}}))
        assert out == ([BridgeMark(f"m{n}")] if n < MAX_MARKS else [])
    assert (wire.marks_dropped, wire.most_marks) == (5, 30)
    wire.mark_played("m0")
    assert wire.parse('{"type":"mark","data":{"name":"again"}}') == [BridgeMark("again")]


def test_odd_bytes_carry_over_and_minus_one_samples_with_marks_pending_are_violations() -> None:
    wire = JambonzWire()
    assert wire.parse(b"\x00" * 161) == [BridgeMedia(b"\xff" * 80)]
    (media,) = wire.parse(b"\x00" * 159)
    assert isinstance(media, BridgeMedia) and len(media.payload) == 80
    minus_one = np.array([0, -1, 3], dtype="<i2").tobytes()
    assert len(wire.parse(minus_one)) == 1  # no marks pending: jambonz plays it as audio
    wire.parse('{"type":"mark","data":{"name":"m1"}}')
    with pytest.raises(CarrierProtocolError, match="jambonz takes it for a mark"):
        wire.parse(minus_one)


def test_disconnect_is_the_bridge_hanging_up_and_nothing_may_follow() -> None:
    wire = JambonzWire()
    assert wire.parse('{"type":"disconnect"}') == [BridgeHangup("disconnect")]
    with pytest.raises(CarrierProtocolError, match="after disconnect"):
        wire.parse(b"\x00\x00")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("nope", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"type":"mark"}', "mark without a string data.name"),
        ('{"type":"mark","data":{"name":7}}', "mark without a string data.name"),
        ('{"type":"playAudio","data":{}}', "ignored when bidirectionalAudio.streaming"),
        ('{"type":"transfer"}', "unknown command type 'transfer'"),
        ('{"action":"clear"}', "unknown command type None"),
    ],
)
def test_what_jambonz_would_refuse_is_a_violation(frame: str, message: str) -> None:
    with pytest.raises(CarrierProtocolError, match=message):
        JambonzWire().parse(frame)


async def test_a_simulated_call_offers_the_subprotocol_and_answers_marks_in_play_order() -> None:
    got: list[str] = []
    subprotocol: list[str | None] = []

    async def bridge(ws: ServerConnection) -> None:
        subprotocol.append(ws.subprotocol)
        json.loads(await ws.recv())
        for n in range(40):  # ten more than jambonz tracks
            await ws.send(b"\x10\x00" * 160)
            await ws.send(json.dumps({"type": "mark", "data": {"name": f"m{n}"}}))
        async for frame in ws:
            if isinstance(frame, str) and '"mark"' in frame:
                got.append(frame)
                if len(got) == 5:
                    await ws.send('{"type":"killAudio"}')
                    await asyncio.sleep(0.05)
                    await ws.send('{"type":"disconnect"}')

    async with serve(
        bridge, "127.0.0.1", 0, subprotocols=[Subprotocol("audio.jambonz.org")]
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        wire = JambonzWire()
        caller = SimulatedCaller(f"ws://127.0.0.1:{port}", wire)
        async with caller.connect():
            await until(lambda: caller.hung_up_by_bridge, 5, "the disconnect")
    assert subprotocol == ["audio.jambonz.org"]
    assert caller.violations == []
    assert caller.hung_up_by_bridge == "disconnect"
    answers = [json.loads(g)["data"] for g in got]
    assert [a["name"] for a in answers] == [f"m{n}" for n in range(30)]  # m30..m39 dropped
    assert [a["event"] for a in answers] == ["playout"] * 5 + ["cleared"] * 25
    assert wire.marks_dropped == 10
