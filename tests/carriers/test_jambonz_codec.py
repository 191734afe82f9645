"""jambonz ``listen`` codec: the call-attributes frame, every event and command, refused formats,
the -1 sample guard, and property tests (parse or raise the protocol error; audio whole and in
order; outbound audio changed only where jambonz would mistake it for a mark)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.jambonz.codec import MAX_MARKS, JambonzCodec
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

SID = "0f1f0a36-6bb0-4bd0-a3c3-4a4d6c5d9f3e"


def attributes(**extra: Any) -> str:
    """The first frame as the feature server builds it: {sampleRate, mixType} + callInfo +
    the verb's metadata, merged at the top level."""
    body = {
        "sampleRate": 8000,
        "mixType": "mono",
        "callSid": SID,
        "direction": "inbound",
        "from": "+15550100001",
        "to": "+15550100002",
        "callId": "abc@10.0.0.5",
        "sipStatus": 200,
        "sipReason": "OK",
        "callStatus": "in-progress",
        "accountSid": "acc-1",
        "headers": {"X-Custom": "y"},
        **extra,
    }
    return json.dumps(body)


def started(rate: int = 8000) -> JambonzCodec:
    codec = JambonzCodec()
    codec.parse(attributes(sampleRate=rate))
    return codec


def test_call_attributes_start_the_call() -> None:
    codec = JambonzCodec()
    event = codec.parse(
        attributes(
            agent="support",
            priority=3,
            vip=True,
            customerData={"customer_name": "Ada", "agent": "overridden", "nested": {"x": 1}},
            metadata={"language": "en-GB"},
        )
    )
    assert event == ev.CallStarted(
        call_sid=SID,
        stream_sid=SID,
        custom_parameters={
            "customer_name": "Ada",
            "agent": "support",  # top level wins over customerData
            "callSid": SID,
            "direction": "inbound",
            "from": "+15550100001",
            "to": "+15550100002",
            "callId": "abc@10.0.0.5",
            "sipStatus": "200",
            "sipReason": "OK",
            "callStatus": "in-progress",
            "accountSid": "acc-1",
            "priority": "3",
            "vip": "true",
            "language": "en-GB",  # a nested metadata object is read too
        },
        encoding="pcm16/8000",
        sample_rate=8000,
    )


@pytest.mark.parametrize("rate", [8000, 16000, 24000, "16000"])
def test_supported_rates(rate: int | str) -> None:
    event = JambonzCodec().parse(attributes(sampleRate=rate))
    assert isinstance(event, ev.CallStarted)
    assert event.encoding == f"pcm16/{rate}" and event.sample_rate == int(rate)


def test_mixed_is_one_channel_and_accepted() -> None:
    assert isinstance(JambonzCodec().parse(attributes(mixType="mixed")), ev.CallStarted)
    assert isinstance(JambonzCodec().parse('{"sampleRate":8000}'), ev.CallStarted)  # mono


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"sampleRate": 48000}, "sampleRate 48000 is not supported.*8000, 16000 or 24000"),
        ({"sampleRate": 64000}, "sampleRate 64000 is not supported"),
        ({"sampleRate": True}, "sampleRate True is not supported"),
        ({"sampleRate": [8000]}, "sampleRate <list> is not supported"),
        ({"mixType": "stereo"}, "mixType 'stereo' is not supported: use mixType mono"),
        ({"mixType": 2}, "mixType 2 is not supported"),
    ],
)
def test_unsupported_streams_are_refused_by_name(extra: dict[str, Any], message: str) -> None:
    codec = JambonzCodec()
    with pytest.raises(CarrierProtocolError, match=message):
        codec.parse(attributes(**extra))
    assert not codec.started
    assert isinstance(codec.parse(attributes()), ev.CallStarted)  # still usable


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\x00" * 320, "audio before the call-attributes frame"),
        ('{"type":"mark","data":{"name":"m1","event":"playout"}}', "not jambonz call attributes"),
        ('{"event":"dtmf","dtmf":"1"}', "not jambonz call attributes"),
        ("not json", "not JSON"),
        ("[8000]", "not a JSON object"),
    ],
)
def test_nothing_counts_before_the_call_attributes(frame: str | bytes, message: str) -> None:
    with pytest.raises(CarrierProtocolError, match=message):
        JambonzCodec().parse(frame)


def test_caller_audio_of_any_size() -> None:
    codec = started()
    for size in (320, 2, 1000, 6400):
        frame = bytes(range(256)) * (size // 256) + bytes(size % 256)
        assert codec.parse(frame) == ev.CallerAudio(frame)
    assert codec.parse(b"") is None
    with pytest.raises(CarrierProtocolError, match="not 16-bit samples"):
        codec.parse(b"\x00" * 321)


def test_events_after_the_attributes() -> None:
    codec = started()
    playout = {"type": "mark", "data": {"name": "m1", "event": "playout"}}
    assert codec.parse(json.dumps(playout)) == ev.PlaybackMark("m1")
    cleared = {"type": "mark", "data": {"name": "m2", "event": "cleared"}}
    assert codec.parse(json.dumps(cleared)) == ev.PlaybackMark("m2")  # flushed: session knows
    dtmf = {"event": "dtmf", "dtmf": "2", "duration": "1600"}
    assert codec.parse(json.dumps(dtmf)) == ev.CallerDtmf("2")
    assert codec.parse('{"event":"dtmf","dtmf":"#","duration":1600}') == ev.CallerDtmf("#")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ('{"type":"mark"}', "'data' must be an object"),
        ('{"type":"mark","data":{"event":"playout"}}', "'name' must be a string"),
        ('{"type":"mark","data":{"name":"m1","event":"started"}}', "event 'started'"),
        ('{"type":"mark","data":{"name":"m1"}}', "event <NoneType>"),
        ('{"event":"dtmf","dtmf":"12"}', "dtmf '12' is not a keypad key"),
        ('{"event":"dtmf","dtmf":5}', "dtmf 5 is not a keypad key"),
        ('{"type":"playDone"}', r"unknown jambonz message \(type 'playDone'\)"),
        ('{"event":"surprise"}', r"unknown jambonz message \(event 'surprise'\)"),
        (attributes(), "a second call-attributes frame"),
    ],
)
def test_bad_frames_raise_and_the_codec_carries_on(frame: str, message: str) -> None:
    codec = started()
    with pytest.raises(CarrierProtocolError, match=message):
        codec.parse(frame)
    assert codec.parse(b"\x01\x00" * 160) == ev.CallerAudio(b"\x01\x00" * 160)


def test_outbound_commands() -> None:
    codec = started()
    assert codec.media(b"\x01\x00\x02\x00") == b"\x01\x00\x02\x00"
    assert json.loads(codec.mark("m9")) == {"type": "mark", "data": {"name": "m9"}}
    assert json.loads(codec.clear()) == {"type": "killAudio"}
    assert json.loads(codec.clear_marks()) == {"type": "clearMarks"}
    assert json.loads(codec.hangup()) == {"type": "disconnect"}
    assert (codec.playback, codec.frame_ms, codec.max_marks) == ("marks", 20, MAX_MARKS)
    assert MAX_MARKS == 30


def test_minus_one_samples_are_nudged_so_jambonz_cannot_take_them_for_marks() -> None:
    codec = started()
    samples = np.array([0, -1, 5, -1, -2, 32767, -32768, 255, -256], dtype="<i2")
    out = np.frombuffer(codec.media(samples.tobytes()), dtype="<i2")
    assert out.tolist() == [0, -2, 5, -2, -2, 32767, -32768, 255, -256]
    assert codec.samples_nudged == 2
    across = np.array([-256, 255], dtype="<i2").tobytes()  # 00 ff|ff 00: ff ff across samples
    assert b"\xff\xff" in across and codec.media(across) == across
    assert codec.samples_nudged == 2


def test_outbound_errors_are_ours() -> None:
    for send in (lambda c: c.media(b"\x00\x00"), lambda c: c.mark("m1"), lambda c: c.clear()):
        with pytest.raises(CarrierProtocolError) as info:
            send(JambonzCodec())
        assert info.value.who == "local"
    with pytest.raises(CarrierProtocolError, match="not 16-bit samples") as info:
        started().media(b"\x00" * 3)
    assert info.value.who == "local"


def test_deeply_nested_values_fail_cleanly() -> None:
    deep = "[" * 1010 + "]" * 1010  # orjson reads 1024 levels; repr() stops at 1000
    with pytest.raises(CarrierProtocolError, match="<list>"):
        JambonzCodec().parse('{"sampleRate":' + deep + "}")
    with pytest.raises(CarrierProtocolError, match="<list>"):
        started().parse('{"type":' + deep + "}")
    frame = attributes(metadata={"x": "DEEP"}).replace('"DEEP"', deep)
    assert isinstance(JambonzCodec().parse(frame), ev.CallStarted)  # objects are left out


# -- properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
field_names = st.sampled_from(
    ["type", "event", "data", "name", "dtmf", "sampleRate", "mixType", "metadata", "callSid"]
)
known = st.sampled_from(["mark", "dtmf", "playout", "cleared", "mono", "stereo", 8000, 48000])
messages = st.dictionaries(field_names, json_values | known)


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64), messages.map(json.dumps)))
def test_parse_returns_an_event_or_raises_its_protocol_error(frame: str | bytes) -> None:
    for codec in (JambonzCodec(), started()):
        try:
            codec.parse(frame)
        except CarrierProtocolError:
            pass


VECTORS = [
    attributes(agent="demo"),
    '{"type":"mark","data":{"name":"m12","event":"playout"}}',
    '{"type":"mark","data":{"name":"m13","event":"cleared"}}',
    '{"event":"dtmf","dtmf":"7","duration":"1600"}',
]


@settings(max_examples=300)
@given(st.sampled_from(VECTORS), st.data())
def test_truncated_and_split_frames_fail_cleanly(frame: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=1, max_value=len(frame) - 1))
    for part in (frame[:cut], frame[cut:]):
        for codec in (JambonzCodec(), started()):
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
    codec = started()
    audio, seen = bytearray(), 0
    for frame in frames:
        event = codec.parse(frame)
        if isinstance(event, ev.CallerAudio):
            audio += event.payload
        elif event is not None:
            seen += 1
    assert bytes(audio) == b"".join(f for f in frames if isinstance(f, bytes))
    assert seen == sum(isinstance(f, str) for f in frames)


@settings(max_examples=300)
@given(st.lists(st.integers(-32768, 32767) | st.just(-1), max_size=200))
def test_outbound_audio_changes_only_minus_one_samples(values: list[int]) -> None:
    codec = started()
    out = np.frombuffer(codec.media(np.array(values, dtype="<i2").tobytes()), dtype="<i2")
    assert len(out) == len(values)
    assert -1 not in out.tolist()
    assert all(o == v or (v == -1 and o == -2) for o, v in zip(out.tolist(), values, strict=True))
    assert codec.samples_nudged == values.count(-1)
