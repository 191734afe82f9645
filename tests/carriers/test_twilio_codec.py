"""Twilio Media Streams codec: recorded vectors, outbound shapes, and the one way it fails."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.twilio.codec import TwilioCodec
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

SID = "MZ00000000000000000000000000000001"
CONNECTED = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC00000000000000000000000000000001",
            "streamSid": SID,
            "callSid": "CA00000000000000000000000000000001",
            "tracks": ["inbound"],
            "customParameters": {"agent": "support", "customer_name": "Ada"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": SID,
    }
)


def media(payload: bytes, *, seq: int = 2, track: str = "inbound", sid: str = SID) -> str:
    b64 = base64.b64encode(payload).decode()
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "media": {"track": track, "chunk": "1", "timestamp": "5", "payload": b64},
            "streamSid": sid,
        }
    )


def started() -> TwilioCodec:
    codec = TwilioCodec()
    assert codec.parse(CONNECTED) is None
    codec.parse(START)
    return codec


def test_start_carries_ids_parameters_and_format() -> None:
    codec = TwilioCodec()
    event = codec.parse(START)
    assert event == ev.CallStarted(
        call_sid="CA00000000000000000000000000000001",
        stream_sid=SID,
        custom_parameters={"agent": "support", "customer_name": "Ada"},
        encoding="pcmu",
        sample_rate=8000,
    )
    assert codec.account_sid == "AC00000000000000000000000000000001"


def test_inbound_vectors() -> None:
    codec = started()
    assert codec.parse(media(b"\xff" * 160)) == ev.CallerAudio(b"\xff" * 160)
    assert codec.parse(media(b"\x00", track="outbound")) is None
    dtmf = '{"event":"dtmf","streamSid":"%s","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}'
    assert codec.parse(dtmf % SID) == ev.CallerDtmf("1")
    mark = '{"event":"mark","sequenceNumber":"4","streamSid":"%s","mark":{"name":"m12"}}'
    assert codec.parse(mark % SID) == ev.PlaybackMark("m12")
    stop = '{"event":"stop","sequenceNumber":"9","streamSid":"%s","stop":{"accountSid":"AC1","callSid":"CA1"}}'
    assert codec.parse(stop % SID) == ev.CallerHangup("caller hung up")


def test_outbound_messages_are_exact_twilio_shapes() -> None:
    codec = started()
    assert json.loads(codec.media(b"\x01\x02\x03")) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": "AQID"},
    }
    assert json.loads(codec.mark("m7")) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "m7"},
    }
    assert json.loads(codec.clear()) == {"event": "clear", "streamSid": SID}


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("not json", "not JSON"),
        ("[1,2]", "not a JSON object"),
        ('{"event":"wat"}', "unknown event"),
        (media(b"\xff"), "media before start"),
    ],
)
def test_bad_frames_before_start(frame: str, message: str) -> None:
    with pytest.raises(CarrierProtocolError, match=message):
        TwilioCodec().parse(frame)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (media(b"\xff", sid="MZother"), "another stream"),
        (START, "second start"),
        ('{"event":"media","streamSid":"%s","media":{"payload":"!!!"}}' % SID, "base64"),
        ('{"event":"media","streamSid":"%s","media":{"payload":5}}' % SID, "payload"),
        ('{"event":"media","streamSid":"%s"}' % SID, "'media' must be an object"),
        ('{"event":"dtmf","streamSid":"%s","dtmf":{"digit":"x"}}' % SID, "keypad"),
        ('{"event":"mark","mark":{}}', "name"),
    ],
)
def test_bad_frames_after_start_raise_and_the_codec_carries_on(frame: str, message: str) -> None:
    codec = started()
    with pytest.raises(CarrierProtocolError, match=message):
        codec.parse(frame)
    assert codec.parse(media(b"\x7f" * 160)) == ev.CallerAudio(b"\x7f" * 160)


def test_unsupported_media_format_is_refused() -> None:
    start = json.loads(START)
    start["start"]["mediaFormat"] = {"encoding": "audio/L16", "sampleRate": 16000}
    with pytest.raises(CarrierProtocolError, match="unsupported media format"):
        TwilioCodec().parse(json.dumps(start))


def test_nothing_is_sent_before_start() -> None:
    with pytest.raises(CarrierProtocolError) as info:
        TwilioCodec().media(b"\xff")
    assert info.value.who == "local"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
field_names = st.sampled_from(
    ["event", "media", "payload", "streamSid", "mark", "name", "dtmf", "digit", "start", "track"]
)
messages = st.dictionaries(
    field_names, json_values | st.sampled_from(["media", "mark", "dtmf", "stop", "start"])
)


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64), messages.map(json.dumps)))
def test_parse_returns_an_event_or_raises_its_protocol_error(frame: str | bytes) -> None:
    for codec in (TwilioCodec(), started()):
        try:
            codec.parse(frame)
        except CarrierProtocolError:
            pass


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=len(START)), st.integers(0, 2))
def test_truncated_and_split_frames_fail_cleanly(cut: int, which: int) -> None:
    frame = [START, media(b"\x00" * 160), CONNECTED][which]
    for part in (frame[:cut], frame[cut:]):
        try:
            started().parse(part)
        except CarrierProtocolError:
            pass
