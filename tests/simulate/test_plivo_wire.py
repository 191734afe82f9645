"""The simulator's Plivo wire: Plivo's exact frame shapes out, strict parsing of what a bridge
sends, and a round trip with the bridge's own codec (each written from the docs on its own)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.plivo.codec import PlivoCodec
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev
from bridge.simulate.carriers.base import BridgeClear, BridgeMark, BridgeMedia
from bridge.simulate.carriers.plivo import PlivoWire

ULAW = bytes(range(0, 256, 2))[:160].ljust(160, b"\xff")


def play(payload: bytes, content_type: str = "audio/x-mulaw", rate: object = 8000) -> str:
    b64 = base64.b64encode(payload).decode()
    media = {"contentType": content_type, "sampleRate": rate, "payload": b64}
    return json.dumps({"event": "playAudio", "media": media})


def test_frames_have_plivos_exact_shapes() -> None:
    wire = PlivoWire(call_id="c-1")
    (start,) = wire.opening({"agent": "demo", "userId": "42"})
    assert json.loads(start) == {
        "event": "start",
        "sequenceNumber": 1,
        "start": {
            "callId": "c-1",
            "streamId": wire.stream_id,
            "accountId": wire.account_id,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        },
        "extra_headers": "agent=demo;userId=42",
    }
    first, second = (json.loads(wire.media(ULAW)) for _ in range(2))  # type: ignore[arg-type]
    assert first == {
        "event": "media",
        "sequenceNumber": 2,
        "streamId": wire.stream_id,
        "media": {
            "track": "inbound",
            "timestamp": str(wire.epoch_ms),
            "chunk": 1,
            "payload": base64.b64encode(ULAW).decode(),
        },
        "extra_headers": "agent=demo;userId=42",
    }
    assert (second["sequenceNumber"], second["media"]["chunk"]) == (3, 2)
    assert int(second["media"]["timestamp"]) - int(first["media"]["timestamp"]) == 20
    assert json.loads(wire.dtmf("7")) == {
        "event": "dtmf",
        "sequenceNumber": 4,
        "streamId": wire.stream_id,
        "dtmf": {"track": "inbound", "digit": "7", "timestamp": str(wire.epoch_ms)},
    }
    assert wire.hangup() is None  # no stop event: the socket closes
    assert json.loads(wire.mark_played("m1") or "") == {
        "event": "playedStream",
        "sequenceNumber": 5,
        "streamId": wire.stream_id,
        "name": "m1",
    }
    # a clear drops the pending checkpoints unanswered; only clearedAudio comes back
    (cleared,) = wire.cleared(["m2", "m3"])
    assert json.loads(cleared) == {
        "event": "clearedAudio",
        "sequenceNumber": 6,
        "streamId": wire.stream_id,
    }


def test_l16_streams_convert_at_the_edge() -> None:
    wire = PlivoWire(content_type="audio/x-l16;rate=16000")
    assert wire.audio_format == "pcm16/16000"
    (start,) = wire.opening({})
    assert json.loads(start)["start"]["mediaFormat"] == {
        "encoding": "audio/x-l16",
        "sampleRate": 16000,
    }
    assert json.loads(start)["extra_headers"] == ""
    frame = json.loads(str(wire.media(b"\xff" * 160)))
    assert len(base64.b64decode(frame["media"]["payload"])) == 640  # 20 ms at 16 kHz, 16-bit
    (got,) = wire.parse(play(b"\x00\x00" * 320, "audio/x-l16", 16000))
    assert got == BridgeMedia(got.payload) and len(got.payload) == 160  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="Plivo streams"):
        PlivoWire(content_type="audio/x-l16;rate=24000")


def test_parses_what_a_bridge_may_send() -> None:
    wire = PlivoWire()
    assert wire.parse(play(b"\x01\x02")) == [BridgeMedia(b"\x01\x02")]
    checkpoint = {"event": "checkpoint", "streamId": wire.stream_id, "name": "m1"}
    assert wire.parse(json.dumps(checkpoint)) == [BridgeMark("m1")]
    clear = {"event": "clearAudio", "streamId": wire.stream_id}
    assert wire.parse(json.dumps(clear)) == [BridgeClear()]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\x00\x01", "binary frame"),
        ("nope", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"event":"media","media":{"payload":"AA=="}}', "unknown event 'media'"),
        ('{"event":"sendDTMF","dtmf":"1"}', "unknown event"),
        ('{"event":"playAudio"}', "without a media object"),
        (play(b"\x01", "audio/x-l16"), "contentType is not the stream's audio/x-mulaw"),
        (play(b"\x01", rate="8000"), "sampleRate is not the number 8000"),
        (play(b"\x01", rate=16000), "sampleRate is not the number 8000"),
        (play(b""), "with no audio"),
        (play(b"RIFF\x00\x00\x00\x00WAVE"), "WAV file"),
        (
            '{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":8000,'
            '"payload":"@@"}}',
            "not valid base64",
        ),
        (
            '{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":8000}}',
            "without a string payload",
        ),
        ('{"event":"checkpoint","name":"m1"}', "without this stream's streamId"),
        ('{"event":"clearAudio","streamId":"other"}', "without this stream's streamId"),
    ],
)
def test_rejects_what_plivo_would_not_play(raw: str | bytes, problem: str) -> None:
    with pytest.raises(CarrierProtocolError, match=problem):
        PlivoWire().parse(raw)


def test_rejects_nameless_checkpoints_and_half_samples() -> None:
    wire = PlivoWire()
    for name in ("", None, 5):
        frame = json.dumps({"event": "checkpoint", "streamId": wire.stream_id, "name": name})
        with pytest.raises(CarrierProtocolError, match="checkpoint without a name"):
            wire.parse(frame)
    l16 = PlivoWire(content_type="audio/x-l16;rate=8000")
    with pytest.raises(CarrierProtocolError, match="not whole 16-bit samples"):
        l16.parse(play(b"\x00\x00\x00", "audio/x-l16", 8000))


@pytest.mark.parametrize(
    "content_type", ["audio/x-mulaw;rate=8000", "audio/x-l16;rate=8000", "audio/x-l16;rate=16000"]
)
def test_round_trip_with_the_bridge_codec(content_type: str) -> None:
    wire, codec = PlivoWire(content_type=content_type), PlivoCodec()
    (start,) = wire.opening({"agent": "demo"})
    started = codec.parse(start)
    assert isinstance(started, ev.CallStarted)
    assert started.encoding == wire.audio_format and started.call_sid == wire.call_id
    assert started.custom_parameters == {"agent": "demo"}
    got = codec.parse(wire.media(b"\xff" * 160))  # type: ignore[arg-type]
    assert isinstance(got, ev.CallerAudio) and len(got.payload) == 160 * wire.bytes_per_ms // 8
    assert codec.parse(wire.dtmf("#")) == ev.CallerDtmf("#")
    assert codec.parse(wire.mark_played("m1") or "") == ev.PlaybackMark("m1")
    assert [codec.parse(f) for f in wire.cleared(["m2"])] == [None]
    chunk = b"\x00" * (wire.bytes_per_ms * 20)
    (media,) = wire.parse(codec.media(chunk))
    assert isinstance(media, BridgeMedia) and len(media.payload) == 160
    assert wire.parse(codec.mark("m9")) == [BridgeMark("m9")]
    assert wire.parse(codec.clear()) == [BridgeClear()]


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64)))
def test_property_parser_fails_one_way(raw: str | bytes) -> None:
    try:
        PlivoWire().parse(raw)
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
    st.sampled_from(["playAudio", "checkpoint", "clearAudio"]),
    st.dictionaries(
        st.sampled_from(["media", "streamId", "name", "contentType", "sampleRate", "payload"]),
        json_values,
    ),
)
def test_property_parser_fails_one_way_on_json_bodies(event: str, body: dict[str, object]) -> None:
    try:
        PlivoWire().parse(json.dumps({**body, "event": event}))
    except CarrierProtocolError:
        pass
