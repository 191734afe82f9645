"""The simulator's Exotel wire: Exotel's exact frame shapes out (caller audio gathered into
~100 ms chunks), strict chunk-size rules on what a bridge sends, and a round trip with the
bridge's own codec (each written from the docs on its own)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.exotel.codec import ExotelCodec
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev
from bridge.simulate.carriers.base import BridgeClear, BridgeMark, BridgeMedia
from bridge.simulate.carriers.exotel import ExotelWire

FRAME = b"\xff" * 160  # 20 ms of μ-law, as the caller hands it to the wire


def media_frame(wire: ExotelWire, size: int, *, sid: str | None = None) -> str:
    payload = base64.b64encode(b"\x00" * size).decode()
    body = {"event": "media", "stream_sid": wire.stream_sid if sid is None else sid}
    return json.dumps({**body, "media": {"payload": payload}})


def test_frames_have_exotels_exact_shapes() -> None:
    wire = ExotelWire(call_sid="c1")
    connected, start = wire.opening({"agent": "demo"})
    assert json.loads(connected) == {"event": "connected"}
    assert json.loads(start) == {
        "event": "start",
        "sequence_number": "1",
        "stream_sid": wire.stream_sid,
        "start": {
            "stream_sid": wire.stream_sid,
            "call_sid": "c1",
            "account_sid": wire.account_sid,
            "from": "09876543210",
            "to": "08047491899",
            "custom_parameters": {"agent": "demo"},
            "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"},
        },
    }
    assert [wire.media(FRAME) for _ in range(4)] == [[], [], [], []]  # gathering 100 ms
    frame = json.loads(str(wire.media(FRAME)))
    assert frame == {
        "event": "media",
        "sequence_number": "2",
        "stream_sid": wire.stream_sid,
        "media": {"chunk": "1", "timestamp": "0", "payload": frame["media"]["payload"]},
    }
    assert base64.b64decode(frame["media"]["payload"]) == b"\x00\x00" * 800  # 100 ms slin
    for _ in range(4):
        wire.media(FRAME)
    second = json.loads(str(wire.media(FRAME)))
    assert (second["media"]["chunk"], second["media"]["timestamp"]) == ("2", "100")
    assert json.loads(wire.dtmf("5")) == {
        "event": "dtmf",
        "sequence_number": "4",
        "stream_sid": wire.stream_sid,
        "dtmf": {"digit": "5", "duration": "200"},
    }
    assert json.loads(wire.mark_played("m1") or "") == {
        "event": "mark",
        "sequence_number": "5",
        "stream_sid": wire.stream_sid,
        "mark": {"name": "m1"},
    }
    assert [json.loads(f)["mark"]["name"] for f in wire.cleared(["m2", "m3"])] == ["m2", "m3"]
    assert json.loads(wire.hangup() or "") == {
        "event": "stop",
        "sequence_number": "8",
        "stream_sid": wire.stream_sid,
        "stop": {"call_sid": "c1", "account_sid": wire.account_sid, "reason": "callended"},
    }


def test_formats_and_options() -> None:
    assert ExotelWire(sample_rate=24000).audio_format == "pcm16/24000"
    mulaw = ExotelWire(mulaw=True, chunk_ms=20)
    assert mulaw.audio_format == "pcmu"
    fmt = json.loads(mulaw.opening({})[1])["start"]["media_format"]
    assert fmt == {"encoding": "audio/x-mulaw", "sample_rate": "8000", "bit_rate": "8"}
    frame = json.loads(str(mulaw.media(FRAME)))  # 20 ms chunks: no gathering
    assert base64.b64decode(frame["media"]["payload"]) == FRAME
    with pytest.raises(ValueError, match="μ-law at 8000"):
        ExotelWire(mulaw=True, sample_rate=16000)
    with pytest.raises(ValueError, match="8000, 16000 or 24000"):
        ExotelWire(sample_rate=44100)
    with pytest.raises(ValueError, match="multiple of 20"):
        ExotelWire(chunk_ms=30)


@pytest.mark.parametrize("size", [3200, 3520, 4800, 99_840])
def test_accepts_chunks_exotel_plays(size: int) -> None:
    wire = ExotelWire()
    (got,) = wire.parse(media_frame(wire, size))
    assert isinstance(got, BridgeMedia) and len(got.payload) == size // 2


@pytest.mark.parametrize("size", [0, 320, 3199, 3210, 3360 + 2, 100_160, 102_400])
def test_flags_every_chunk_exotel_would_mangle(size: int) -> None:
    wire = ExotelWire()
    with pytest.raises(CarrierProtocolError, match=f"media of {size} bytes"):
        wire.parse(media_frame(wire, size))


def test_parses_marks_and_clears() -> None:
    wire = ExotelWire()
    mark = {"event": "mark", "stream_sid": wire.stream_sid, "mark": {"name": "m1"}}
    assert wire.parse(json.dumps(mark)) == [BridgeMark("m1")]
    assert wire.parse(json.dumps({"event": "clear", "stream_sid": wire.stream_sid})) == [
        BridgeClear()
    ]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\x00", "binary frame"),
        ("nope", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"event":"playAudio"}', "unknown event 'playAudio'"),
        ('{"event":"clear"}', "without this stream's stream_sid"),
        ('{"event":"mark","streamSid":"%s","mark":{"name":"m"}}', "stream_sid"),
    ],
)
def test_rejects_what_exotel_would_not_take(raw: str | bytes, problem: str) -> None:
    wire = ExotelWire()
    if isinstance(raw, str) and "%s" in raw:
        raw = raw % wire.stream_sid
    with pytest.raises(CarrierProtocolError, match=problem):
        wire.parse(raw)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"event": "mark"}, "mark without a 'mark' object"),
        ({"event": "mark", "mark": {"name": ""}}, "mark without a name"),
        ({"event": "media", "media": {}}, "without a string payload"),
        ({"event": "media", "media": {"payload": "@@@@"}}, "not valid base64"),
    ],
)
def test_rejects_malformed_bodies(body: dict[str, object], problem: str) -> None:
    wire = ExotelWire()
    with pytest.raises(CarrierProtocolError, match=problem):
        wire.parse(json.dumps({**body, "stream_sid": wire.stream_sid}))


@pytest.mark.parametrize(("rate", "mulaw"), [(8000, False), (16000, False), (24000, False),
                                              (8000, True)])  # fmt: skip
def test_round_trip_with_the_bridge_codec(rate: int, mulaw: bool) -> None:
    wire, codec = ExotelWire(sample_rate=rate, mulaw=mulaw), ExotelCodec()
    connected, start = wire.opening({"agent": "demo"})
    assert codec.parse(connected) is None
    started = codec.parse(start)
    assert isinstance(started, ev.CallStarted) and started.encoding == wire.audio_format
    assert started.custom_parameters["agent"] == "demo" and started.call_sid == wire.call_sid
    for _ in range(4):
        assert wire.media(FRAME) == []
    got = codec.parse(str(wire.media(FRAME)))
    assert isinstance(got, ev.CallerAudio) and len(got.payload) == 100 * wire.bytes_per_ms
    assert codec.parse(wire.dtmf("9")) == ev.CallerDtmf("9")
    assert codec.parse(wire.mark_played("m1") or "") == ev.PlaybackMark("m1")
    # one chunk of the codec's frame_ms is exactly what the strict wire accepts
    chunk = b"\x00" * (wire.bytes_per_ms * codec.frame_ms)
    (media,) = wire.parse(codec.media(chunk))
    assert isinstance(media, BridgeMedia) and len(media.payload) == 8 * codec.frame_ms
    assert wire.parse(codec.mark("m9")) == [BridgeMark("m9")]
    assert wire.parse(codec.clear()) == [BridgeClear()]
    assert codec.parse(wire.hangup() or "") == ev.CallerHangup("Exotel stopped the stream")


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64)))
def test_property_parser_fails_one_way(raw: str | bytes) -> None:
    try:
        ExotelWire().parse(raw)
    except CarrierProtocolError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300)
@given(
    st.sampled_from(["media", "mark", "clear"]),
    st.dictionaries(st.sampled_from(["media", "mark", "name", "payload"]), json_values),
)
def test_property_parser_fails_one_way_on_json_bodies(event: str, body: dict[str, object]) -> None:
    wire = ExotelWire()
    try:
        wire.parse(json.dumps({**body, "event": event, "stream_sid": wire.stream_sid}))
    except CarrierProtocolError:
        pass
