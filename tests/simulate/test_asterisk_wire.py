"""The simulator's Asterisk chan_websocket wire: exact frames out, strict parsing in, and the
XOFF/XON flow control it runs on the caller's playback queue."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.asterisk.codec import AsteriskCodec
from bridge.carriers.base import FlowPaused, FlowResumed
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev
from bridge.simulate.carriers.asterisk import AsteriskWire
from bridge.simulate.carriers.base import BridgeClear, BridgeHangup, BridgeMark, BridgeMedia


def test_plain_frames_have_asterisks_shapes() -> None:
    wire = AsteriskWire()
    assert wire.subprotocols == ("media",)
    (start,) = wire.opening({})
    assert start == (
        f"MEDIA_START connection_id:{wire.connection_id} channel:{wire.channel} "
        f"channel_id:{wire.channel_id} format:ulaw optimal_frame_size:160 ptime:20"
    )
    assert wire.channel.startswith("WebSocket/callbridge/0x")
    assert wire.media(b"\x00" * 160) == b"\x00" * 160
    assert wire.dtmf("5") == f"DTMF_END digit:5 channel_id:{wire.channel_id}"
    assert wire.mark_played("m3") == "MEDIA_MARK_PROCESSED m3"
    assert wire.mark_played("") == "MEDIA_MARK_PROCESSED"
    assert wire.event("MEDIA_XOFF") == "MEDIA_XOFF"
    assert wire.event("STATUS", queue_length=3, queue_full=False) == (
        f"STATUS channel_id:{wire.channel_id} queue_length:3 queue_full:false"
    )
    assert wire.event("ERROR", error_text="Unable to parse") == (
        f"ERROR channel_id:{wire.channel_id} error_text:Unable to parse"
    )
    assert wire.hangup() is None  # Asterisk just closes the socket
    with pytest.raises(ValueError, match="put the parameters in the URL"):
        wire.opening({"agent": "demo"})


def test_json_frames_have_asterisks_shapes() -> None:
    wire = AsteriskWire(control="json", format="slin16", channel_variables={"_agent": "x"})
    (start,) = wire.opening({"caller_name": "Ada"})
    assert json.loads(start) == {
        "event": "MEDIA_START",
        "connection_id": wire.connection_id,
        "channel": wire.channel,
        "channel_id": wire.channel_id,
        "format": "slin16",
        "optimal_frame_size": 640,
        "ptime": 20,
        "channel_variables": {
            "MEDIA_WEBSOCKET_CONNECTION_ID": wire.connection_id,
            "MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE": "640",
            "_agent": "x",
            "caller_name": "Ada",
        },
    }
    assert len(wire.media(b"\xff" * 160)) == 640  # 20 ms of slin16
    assert json.loads(wire.dtmf("#")) == {
        "event": "DTMF_END",
        "channel_id": wire.channel_id,
        "digit": "#",
    }
    assert json.loads(wire.mark_played("m1") or "") == {
        "event": "MEDIA_MARK_PROCESSED",
        "channel_id": wire.channel_id,
        "correlation_id": "m1",
    }
    assert json.loads(wire.event("MEDIA_XON")) == {
        "event": "MEDIA_XON",
        "channel_id": wire.channel_id,
    }


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="'plain' or 'json'"):
        AsteriskWire(control="xml")
    with pytest.raises(ValueError, match="not 'opus'"):
        AsteriskWire(format="opus")
    with pytest.raises(ValueError, match="flow levels"):
        AsteriskWire(xoff_frames=10, xon_frames=20)


@pytest.mark.parametrize("control", ["plain", "json"])
def test_commands_from_the_bridge(control: str) -> None:
    wire = AsteriskWire(control=control)

    def cmd(name: str, correlation: str | None = None) -> str:
        if control == "plain":
            return f"{name} {correlation}" if correlation else name
        body = {"command": name} | ({"correlation_id": correlation} if correlation else {})
        return json.dumps(body)

    assert wire.parse(cmd("MARK_MEDIA", "m9")) == [BridgeMark("m9")]
    assert wire.parse(cmd("MARK_MEDIA")) == [BridgeMark("")]
    assert wire.parse(cmd("FLUSH_MEDIA")) == [BridgeClear()]
    assert wire.parse(cmd("HANGUP")) == [BridgeHangup("HANGUP")]
    assert wire.parse(cmd("ANSWER")) == []
    assert wire.cleared(["m1", "m2"]) == []  # FLUSH_MEDIA answers none of the flushed marks
    with pytest.raises(CarrierProtocolError, match="does not model"):
        wire.parse(cmd("START_MEDIA_BUFFERING"))
    with pytest.raises(CarrierProtocolError, match="unknown command"):
        wire.parse(cmd("mark_media", "m1"))  # case-sensitive
    with pytest.raises(CarrierProtocolError, match="over 128 bytes"):
        wire.parse(cmd("MARK_MEDIA", "m" * 130))


def test_commands_in_the_wrong_format_are_violations() -> None:
    with pytest.raises(CarrierProtocolError, match="JSON command on a plain-text channel"):
        AsteriskWire().parse('{"command":"FLUSH_MEDIA"}')
    json_wire = AsteriskWire(control="json")
    with pytest.raises(CarrierProtocolError, match="not JSON on a JSON channel"):
        json_wire.parse("FLUSH_MEDIA")
    with pytest.raises(CarrierProtocolError, match="without a 'command'"):
        json_wire.parse('{"event":"FLUSH_MEDIA"}')
    with pytest.raises(CarrierProtocolError, match="correlation_id is not a string"):
        json_wire.parse('{"command":"MARK_MEDIA","correlation_id":7}')


def test_media_must_be_whole_optimal_frames_within_the_message_limit() -> None:
    wire = AsteriskWire(format="slin16")
    (msg,) = wire.parse(b"\x00\x00" * 640)  # 40 ms
    assert isinstance(msg, BridgeMedia) and len(msg.payload) == 320  # as μ-law 8 kHz
    assert (wire.media_frames, wire.media_bytes) == (1, 1280)
    with pytest.raises(CarrierProtocolError, match="Asterisk drops 2 bytes"):
        wire.parse(b"\x00" * 642)
    with pytest.raises(CarrierProtocolError, match="empty binary"):
        wire.parse(b"")
    with pytest.raises(CarrierProtocolError, match="closes the socket"):
        wire.parse(b"\x00" * 65_920)  # 103 frames: whole frames, but one message too big
    odd = AsteriskWire(ptime=30)
    assert odd.optimal_frame_size == 240
    with pytest.raises(CarrierProtocolError, match="240-byte frames"):
        odd.parse(b"\xff" * 160)


def test_xoff_and_xon_follow_the_queue_with_hysteresis() -> None:
    wire = AsteriskWire(xoff_frames=50, xon_frames=25, max_frames=60)
    assert wire.queue_changed(980.0) == []  # 49 frames
    assert wire.queue_changed(1000.0) == ["MEDIA_XOFF"]  # 50: Asterisk says XOFF at the level
    assert wire.queue_changed(1100.0) == []  # said once
    assert wire.queue_changed(520.0) == []  # between the levels: still XOFF
    assert wire.queue_changed(499.0) == ["MEDIA_XON"]
    assert wire.queue_changed(499.0) == []
    assert [event for event, _, _ in wire.flow_log] == ["MEDIA_XOFF", "MEDIA_XON"]
    json_wire = AsteriskWire(control="json", xoff_frames=1, xon_frames=1)
    (xoff,) = json_wire.queue_changed(20.0)
    assert json.loads(xoff) == {"event": "MEDIA_XOFF", "channel_id": json_wire.channel_id}


def test_media_in_flight_when_xoff_left_is_taken_later_media_is_a_violation() -> None:
    wire = AsteriskWire(xoff_frames=50, xon_frames=25, xoff_grace_ms=100)
    frame = b"\xff" * 160
    wire.queue_changed(1000.0)  # XOFF
    for _ in range(10):  # the rest of the burst the bridge wrote before it read the XOFF
        wire.parse(frame)
    assert wire.in_flight_frames == 10
    wire.queue_changed(1150.0)  # 200 ms arrived, 50 ms played since the XOFF
    wire.parse(frame)
    wire.queue_changed(1060.0)  # 220 ms arrived, 160 ms played since the XOFF
    with pytest.raises(CarrierProtocolError, match="160 ms after MEDIA_XOFF"):
        wire.parse(frame)
    assert (wire.in_flight_frames, wire.in_flight_ms) == (11, 50.0)
    assert wire.queue_changed(400.0) == ["MEDIA_XON"]
    wire.parse(frame)  # taken again
    assert (wire.in_flight_frames, wire.in_flight_ms) == (11, 50.0)
    assert wire.media_frames == 12


def test_a_flush_during_xoff_ends_it() -> None:
    wire = AsteriskWire(xoff_frames=50, xon_frames=25)
    wire.queue_changed(1200.0)
    assert wire.parse("FLUSH_MEDIA") == [BridgeClear()]
    assert wire.queue_changed(0.0) == ["MEDIA_XON"]  # Asterisk: XON at the next frame tick


def test_a_full_queue_drops_media() -> None:
    wire = AsteriskWire(xoff_frames=2, xon_frames=1, max_frames=3, xoff_grace_ms=10_000)
    frame = b"\xff" * 160
    wire.parse(frame)
    wire.parse(frame)
    wire.parse(frame)  # 3 queued: the next one has no room
    with pytest.raises(CarrierProtocolError, match="queue full"):
        wire.parse(frame)
    assert wire.queue_changed(60.0) == ["MEDIA_XOFF"]
    with pytest.raises(CarrierProtocolError, match="queue full"):
        wire.parse(frame)
    wire.queue_changed(40.0)
    wire.parse(frame)  # room again (XOFF still in force, but within the grace)


@pytest.mark.parametrize("control", ["plain", "json"])
@pytest.mark.parametrize(
    ("fmt", "ptime"), [("ulaw", 20), ("alaw", 30), ("slin", 20), ("slin16", 20), ("slin24", 20)]
)
def test_the_bridge_codec_and_the_wire_understand_each_other(
    control: str, fmt: str, ptime: int
) -> None:
    wire, codec = AsteriskWire(control=control, format=fmt, ptime=ptime), AsteriskCodec()
    params = {"agent": "demo"} if control == "json" else {}
    (start,) = wire.opening(params)
    event = codec.parse(start)
    assert isinstance(event, ev.CallStarted)
    assert event.call_sid == wire.channel_id
    assert event.encoding == wire.audio_format
    assert params.items() <= event.custom_parameters.items()
    assert codec.frame_ms == ptime
    assert codec.parse(wire.media(b"\xff" * 160)) == ev.CallerAudio(wire.to_wire(b"\xff" * 160))
    assert codec.parse(wire.dtmf("9")) == ev.CallerDtmf("9")
    assert codec.parse(wire.mark_played("m4") or "") == ev.PlaybackMark("m4")
    (xoff,) = wire.queue_changed(1e9)
    assert codec.parse(xoff) == FlowPaused()
    (xon,) = wire.queue_changed(0.0)
    assert codec.parse(xon) == FlowResumed()
    chunk = bytes(codec.frame_ms * wire.bytes_per_ms)
    assert isinstance(wire.parse(codec.media(chunk))[0], BridgeMedia)
    assert isinstance(wire.parse(codec.media(chunk[:7]))[0], BridgeMedia)  # padded, never cut
    assert wire.parse(codec.mark("m4")) == [BridgeMark("m4")]
    assert wire.parse(codec.clear()) == [BridgeClear()]
    assert wire.parse(codec.hangup() or "") == [BridgeHangup("HANGUP")]


@settings(max_examples=300)
@given(st.sampled_from(["plain", "json"]), st.binary(max_size=400) | st.text(max_size=140))
def test_anything_from_a_bridge_parses_or_is_a_violation(control: str, raw: str | bytes) -> None:
    wire = AsteriskWire(control=control)
    try:
        messages = wire.parse(raw)
    except CarrierProtocolError:
        return
    assert all(
        isinstance(m, BridgeMedia | BridgeMark | BridgeClear | BridgeHangup) for m in messages
    )
