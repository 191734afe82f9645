"""Vonage Voice API websocket codec: every event and outbound frame, refused formats, and
property tests (parse or raise the protocol error; audio passes through whole and in order)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.vonage.codec import VonageCodec
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

UUID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"


def connected(content_type: str = "audio/l16;rate=16000", **headers: Any) -> str:
    return json.dumps({"event": "websocket:connected", "content-type": content_type, **headers})


def started(rate: int = 16000) -> VonageCodec:
    codec = VonageCodec()
    codec.parse(connected(f"audio/l16;rate={rate}", uuid=UUID))
    return codec


def test_connected_gives_the_call_its_parameters_and_format() -> None:
    codec = VonageCodec()
    event = codec.parse(
        connected(
            uuid=UUID,
            **{"from": "447700900001", "to": "447700900002"},
            agent="support",
            age=40,
            enable_auditing=False,
            address={"city": "New York City"},
            nothing=None,
        )
    )
    assert event == ev.CallStarted(
        call_sid=UUID,
        stream_sid=UUID,
        custom_parameters={
            "uuid": UUID,
            "from": "447700900001",
            "to": "447700900002",
            "agent": "support",
            "age": "40",
            "enable_auditing": "false",
            "address": '{"city":"New York City"}',
        },
        encoding="pcm16/16000",
        sample_rate=16000,
    )
    assert codec.frame_bytes == 640


@pytest.mark.parametrize(
    ("content_type", "rate", "frame"),
    [
        ("audio/l16;rate=8000", 8000, 320),
        ("audio/L16; rate=16000", 16000, 640),
        ("audio/l16;rate=24000", 24000, 960),
    ],
)
def test_each_rate_has_its_20_ms_frame(content_type: str, rate: int, frame: int) -> None:
    codec = VonageCodec()
    event = codec.parse(connected(content_type))
    assert isinstance(event, ev.CallStarted)
    assert (event.encoding, event.sample_rate, codec.frame_bytes) == (f"pcm16/{rate}", rate, frame)
    assert event.call_sid == ""  # no uuid header: the NCCO did not put it there


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (connected("audio/l16;rate=44100"), "'audio/l16;rate=44100' is not supported"),
        (connected("audio/pcmu;rate=8000"), "audio/l16;rate=8000, 16000 or 24000"),
        (connected("audio/l16"), "'audio/l16' is not supported"),
        ('{"event":"websocket:connected"}', "no content-type"),
        ('{"event":"websocket:connected","content-type":16000}', "no content-type"),
    ],
)
def test_unsupported_formats_are_refused_by_name(frame: str, message: str) -> None:
    codec = VonageCodec()
    with pytest.raises(CarrierProtocolError, match=message):
        codec.parse(frame)
    assert not codec.started
    assert isinstance(codec.parse(connected()), ev.CallStarted)  # still usable


def test_caller_audio() -> None:
    codec = started()
    frame = bytes(range(256)) * 2 + bytes(128)
    assert codec.parse(frame) == ev.CallerAudio(frame)
    assert codec.off_size_frames == 0
    assert codec.parse(b"\x01\x00" * 100) == ev.CallerAudio(b"\x01\x00" * 100)  # not 20 ms
    assert codec.off_size_frames == 1
    assert codec.parse(b"") is None
    with pytest.raises(CarrierProtocolError, match="not 16-bit samples"):
        codec.parse(b"\x00" * 641)


def test_events_after_connected() -> None:
    codec = started()
    notify = {"event": "websocket:notify", "payload": {"mark": "m7"}}
    assert codec.parse(json.dumps(notify)) == ev.PlaybackMark("m7")
    dtmf = {"event": "websocket:dtmf", "digit": "5", "duration": 260}
    assert codec.parse(json.dumps(dtmf)) == ev.CallerDtmf("5")
    nested = {"event": "websocket:dtmf", "dtmf": {"digit": "#", "duration": 260}}
    assert codec.parse(json.dumps(nested)) == ev.CallerDtmf("#")
    assert codec.parse('{"event":"websocket:cleared"}') is None
    assert codec.parse('{"event":"websocket:media:update","mute":true}') is None


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"event":"websocket:surprise"}', "unknown Vonage event 'websocket:surprise'"),
        ('{"event":"websocket:notify"}', "'payload' must be an object"),
        ('{"event":"websocket:notify","payload":{"other":"x"}}', "no mark of ours"),
        ('{"event":"websocket:notify","payload":{"mark":5}}', "no mark of ours"),
        ('{"event":"websocket:dtmf","digit":"55"}', "not a keypad key"),
        ('{"event":"websocket:dtmf","digit":5}', "not a keypad key"),
        ('{"event":"websocket:dtmf","dtmf":"5"}', "not a keypad key"),
        ('{"event":"websocket:dtmf"}', "not a keypad key"),
        (connected(), "second websocket:connected"),
    ],
)
def test_bad_frames_raise_and_the_codec_carries_on(frame: str, message: str) -> None:
    codec = started()
    with pytest.raises(CarrierProtocolError, match=message):
        codec.parse(frame)
    assert codec.parse(b"\x00" * 640) == ev.CallerAudio(b"\x00" * 640)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\x00" * 640, "audio before websocket:connected"),
        ('{"event":"websocket:dtmf","digit":"1"}', "before websocket:connected"),
        ('{"event":"websocket:notify","payload":{"mark":"m1"}}', "before websocket:connected"),
    ],
)
def test_nothing_counts_before_connected(frame: str | bytes, message: str) -> None:
    with pytest.raises(CarrierProtocolError, match=message):
        VonageCodec().parse(frame)


def test_outbound_frames() -> None:
    codec = started(8000)
    audio = bytes(range(160)) * 2
    assert codec.media(audio) == audio
    assert json.loads(codec.mark("m12")) == {"action": "notify", "payload": {"mark": "m12"}}
    assert json.loads(codec.clear()) == {"action": "clear"}
    assert codec.hangup() is None  # closing the socket ends the NCCO connect action
    assert codec.playback == "marks" and codec.frame_ms == 20 and codec.max_marks == 500


@pytest.mark.parametrize("size", [0, 319, 321, 640])
def test_outbound_audio_must_be_exactly_20_ms(size: int) -> None:
    with pytest.raises(CarrierProtocolError, match="20 ms frames of 320 bytes") as info:
        started(8000).media(b"\x00" * size)
    assert info.value.who == "local"


def test_nothing_is_sent_before_connected() -> None:
    for send in (
        lambda c: c.media(b"\x00" * 640),
        lambda c: c.mark("m1"),
        lambda c: c.clear(),
    ):
        with pytest.raises(CarrierProtocolError) as info:
            send(VonageCodec())
        assert info.value.who == "local"


# -- properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
field_names = st.sampled_from(
    ["event", "content-type", "payload", "mark", "digit", "dtmf", "duration", "uuid", "action"]
)
events = st.sampled_from(
    ["websocket:connected", "websocket:notify", "websocket:dtmf", "websocket:cleared", "x"]
)
messages = st.dictionaries(field_names, json_values | events | st.just("audio/l16;rate=8000"))


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64), messages.map(json.dumps)))
def test_parse_returns_an_event_or_raises_its_protocol_error(frame: str | bytes) -> None:
    for codec in (VonageCodec(), started()):
        try:
            codec.parse(frame)
        except CarrierProtocolError:
            pass


def test_deeply_nested_values_fail_cleanly() -> None:
    deep = "[" * 1010 + "]" * 1010  # orjson reads 1024 levels, writes 254; repr() stops at 1000
    frame = '{"event":"websocket:connected","content-type":"audio/l16;rate=8000","x":' + deep + "}"
    with pytest.raises(CarrierProtocolError, match="nested too deeply"):
        VonageCodec().parse(frame)
    for codec in (VonageCodec(), started()):
        with pytest.raises(CarrierProtocolError, match="<list>"):
            codec.parse('{"event":' + deep + "}")
    with pytest.raises(CarrierProtocolError, match="<list>"):
        started().parse('{"event":"websocket:dtmf","digit":' + deep + "}")


VECTORS = [
    connected(uuid=UUID, agent="demo"),
    '{"event":"websocket:dtmf","digit":"7","duration":260}',
    '{"event":"websocket:notify","payload":{"mark":"m3"}}',
    '{"event":"websocket:dtmf","dtmf":{"digit":"*","duration":100}}',
]


@settings(max_examples=300)
@given(st.sampled_from(VECTORS), st.data())
def test_truncated_and_split_frames_fail_cleanly(frame: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=1, max_value=len(frame) - 1))
    for part in (frame[:cut], frame[cut:]):
        for codec in (VonageCodec(), started()):
            with pytest.raises(CarrierProtocolError):
                codec.parse(part)


@settings(max_examples=200)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40).map(lambda b: b[: len(b) // 2 * 2]),
            st.sampled_from(VECTORS[1:]),
        ),
        max_size=30,
    )
)
def test_audio_passes_through_whole_and_in_order(frames: list[str | bytes]) -> None:
    """Whatever the mix of frame sizes and events, the caller's audio comes out byte for byte,
    and the events in the order they came."""
    codec = started()
    audio, seen = bytearray(), []
    for frame in frames:
        event = codec.parse(frame)
        if isinstance(event, ev.CallerAudio):
            audio += event.payload
        elif event is not None:
            seen.append(event)
    assert bytes(audio) == b"".join(f for f in frames if isinstance(f, bytes))
    assert len(seen) == sum(isinstance(f, str) for f in frames)
