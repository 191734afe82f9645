"""The simulated caller's Vonage wire: exact frames out, strict parsing of what the bridge sends,
and the notify / clear answers on a real simulated call."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.server import ServerConnection, serve

from bridge.errors import CarrierProtocolError
from bridge.simulate.caller import SimulatedCaller
from bridge.simulate.carriers.base import BridgeClear, BridgeMark, BridgeMedia
from bridge.simulate.carriers.vonage import VonageWire
from tests.waiting import until


def test_opening_is_websocket_connected_with_the_headers_flattened() -> None:
    wire = VonageWire(rate=16000, uuid="u-1")
    (frame,) = wire.opening({"agent": "demo"})
    assert json.loads(frame) == {
        "event": "websocket:connected",
        "content-type": "audio/l16;rate=16000",
        "uuid": "u-1",
        "from": "447700900001",
        "to": "447700900002",
        "agent": "demo",
    }
    with pytest.raises(ValueError, match="512 bytes"):
        wire.opening({"big": "x" * 500})


@pytest.mark.parametrize(("rate", "size"), [(8000, 320), (16000, 640), (24000, 960)])
def test_caller_frames_are_20_ms_of_l16(rate: int, size: int) -> None:
    wire = VonageWire(rate=rate)
    frame = wire.media(b"\xff" * 160)
    assert isinstance(frame, bytes) and len(frame) == size
    assert wire.parse(b"\x00" * size) == [BridgeMedia(b"\xff" * 160)]
    with pytest.raises(ValueError, match="8000, 16000 or 24000 Hz, not 44100"):
        VonageWire(rate=44100)


def test_dtmf_both_shapes_and_no_hangup_frame() -> None:
    assert json.loads(VonageWire().dtmf("5")) == {
        "event": "websocket:dtmf",
        "digit": "5",
        "duration": 260,
    }
    assert json.loads(VonageWire(nested_dtmf=True).dtmf("#")) == {
        "event": "websocket:dtmf",
        "dtmf": {"digit": "#", "duration": 260},
    }
    assert VonageWire().hangup() is None


def test_notify_payload_comes_back_untouched_and_clear_is_answered() -> None:
    wire = VonageWire()
    (mark,) = wire.parse('{"action":"notify","payload":{"mark":"m1","n":[1,2]}}')
    assert isinstance(mark, BridgeMark)
    answer = wire.mark_played(mark.name)
    assert isinstance(answer, str)
    assert json.loads(answer) == {
        "event": "websocket:notify",
        "payload": {"mark": "m1", "n": [1, 2]},
    }
    assert wire.parse('{"action":"clear"}') == [BridgeClear()]
    assert [json.loads(f) for f in wire.cleared([mark.name])] == [{"event": "websocket:cleared"}]
    flushing = VonageWire(notify_flushed=True)
    assert len(flushing.cleared([mark.name])) == 2
    assert (wire.notifies, wire.clears) == (1, 1)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\x00" * 320, "Vonage plays 20 ms frames of 640 bytes"),
        (b"\x00" * 641, "binary frame of 641 bytes"),
        ("nope", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"action":"notify"}', "notify without an object payload"),
        ('{"action":"notify","payload":"m1"}', "notify without an object payload"),
        ('{"action":"hangup"}', "unknown action 'hangup'"),
        ('{"event":"media"}', "unknown action None"),
    ],
)
def test_what_vonage_would_refuse_is_a_violation(frame: str | bytes, message: str) -> None:
    with pytest.raises(CarrierProtocolError, match=message):
        VonageWire().parse(frame)


async def test_a_simulated_call_answers_notifies_as_they_play_and_clears() -> None:
    """A tiny bridge sends 3 frames + notify each, then clears during the second run."""
    got: list[str | bytes] = []

    async def bridge(ws: ServerConnection) -> None:
        first = await ws.recv()
        assert json.loads(first)["event"] == "websocket:connected"
        for n in range(3):
            await ws.send(b"\x10\x00" * 320)
            await ws.send(json.dumps({"action": "notify", "payload": {"mark": f"m{n}"}}))
        async for frame in ws:
            if isinstance(frame, str):
                got.append(frame)
                if json.loads(frame).get("payload") == {"mark": "m2"}:
                    for n in range(3, 50):
                        await ws.send(b"\x10\x00" * 320)
                        await ws.send(
                            json.dumps({"action": "notify", "payload": {"mark": f"m{n}"}})
                        )
                    await asyncio.sleep(0.1)
                    await ws.send('{"action":"clear"}')

    async with serve(bridge, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        caller = SimulatedCaller(f"ws://127.0.0.1:{port}", VonageWire())
        async with caller.connect():
            await until(lambda: caller.clears, 5, "the clear")
            await until(lambda: any("cleared" in g for g in got), 5, "websocket:cleared")
    assert caller.violations == []
    notified = [json.loads(g)["payload"]["mark"] for g in got if "websocket:notify" in g]
    assert notified[:3] == ["m0", "m1", "m2"]
    assert 3 < len(notified) < 47  # the clear dropped the rest, unanswered
    assert notified == [f"m{n}" for n in range(len(notified))]
    assert caller.clears[0].flushed_marks  # they were pending when the clear came
