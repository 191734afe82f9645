"""WebRTC (browser call) codec: the start and every event, refused formats and bad frames, the
outbound frames, and property tests (parse or raise the protocol error; the codec carries on)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.base import DTMF_KEYS, MAX_FRAME_CHARS
from bridge.carriers.webrtc.codec import WebRTCCodec, control
from bridge.errors import CarrierProtocolError, CarrierStartRefused
from bridge.session import events as ev

CALL_ID = "01JD3ZQ7H8XKQ4W2N6V9R5T0AB"


def start(fmt: str = "pcmu", call_id: str = CALL_ID, **parameters: Any) -> str:
    return control("start", call_id=call_id, format=fmt, parameters=parameters)


def started(fmt: str = "pcmu") -> WebRTCCodec:
    codec = WebRTCCodec()
    assert isinstance(codec.parse(start(fmt)), ev.CallStarted)
    return codec


# -- start -------------------------------------------------------------------------------------


def test_start_gives_the_call_its_id_parameters_and_format() -> None:
    codec = WebRTCCodec()
    assert not codec.started
    event = codec.parse(start("pcmu", agent="support", customer="Ada", tier=3))
    assert event == ev.CallStarted(
        call_sid=CALL_ID,
        stream_sid=CALL_ID,
        custom_parameters={"agent": "support", "customer": "Ada", "tier": "3"},
        encoding="pcmu",
        sample_rate=8000,
    )
    assert codec.started


@pytest.mark.parametrize(
    ("fmt", "rate"), [("pcmu", 8000), ("pcm16/16000", 16000), ("pcm16/24000", 24000)]
)
def test_each_call_format(fmt: str, rate: int) -> None:
    event = WebRTCCodec().parse(start(fmt))
    assert isinstance(event, ev.CallStarted)
    assert (event.encoding, event.sample_rate) == (fmt, rate)
    assert event.custom_parameters == {}


def test_parameters_are_stringified() -> None:
    frame = control("start", call_id="c1", format="pcmu", parameters={"n": 5, "x": 1.5, "s": "t"})
    event = WebRTCCodec().parse(frame)
    assert isinstance(event, ev.CallStarted)
    assert event.custom_parameters == {"n": "5", "x": "1.5", "s": "t"}


def test_codec_facts() -> None:
    codec = WebRTCCodec()
    assert (codec.carrier, codec.playback, codec.frame_ms) == ("webrtc", "marks", 20)
    assert frozenset("0123456789*#ABCD") == DTMF_KEYS


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (start("pcm16/44100"), "unknown audio format 'pcm16/44100'"),
        (start("opus"), "unknown audio format 'opus'"),
        (start("PCMU"), "unknown audio format 'PCMU'"),
        (control("start", call_id=CALL_ID, parameters={}), "'format' must be a string"),
        (control("start", call_id=CALL_ID, format=8000, parameters={}), "'format' must be"),
        (control("start", format="pcmu", parameters={}), "'call_id' must be a string"),
        (control("start", call_id=7, format="pcmu", parameters={}), "'call_id' must be a string"),
        (control("start", call_id=CALL_ID, format="pcmu"), "'parameters' must be an object"),
        (control("start", call_id=CALL_ID, format="pcmu", parameters=[]), "'parameters' must be"),
    ],
)
def test_a_bad_start_is_refused_by_name_and_the_codec_waits_for_a_good_one(
    frame: str, message: str
) -> None:
    codec = WebRTCCodec()
    with pytest.raises(CarrierProtocolError, match=message) as info:
        codec.parse(frame)
    assert info.value.who == "remote"
    assert not codec.started
    with pytest.raises(CarrierProtocolError, match="'mark' before start"):
        codec.parse(control("mark", name="m1"))
    assert isinstance(codec.parse(start()), ev.CallStarted)


def test_the_unsupported_format_message_lists_what_is_supported() -> None:
    with pytest.raises(CarrierProtocolError) as info:
        WebRTCCodec().parse(start("pcm16/44100"))
    assert "pcmu" in info.value.message and "pcm16/24000" in info.value.message


@pytest.mark.parametrize("fmt", ["pcm16/44100", "opus"])
def test_an_unsupported_format_refuses_the_start(fmt: str) -> None:
    """Not a bad frame to skip: the runtime ends a call whose start is refused, rather than
    wait on dead air for a second start the peer will never send."""
    codec = WebRTCCodec()
    with pytest.raises(CarrierProtocolError) as info:
        codec.parse(start(fmt))
    assert isinstance(info.value, CarrierStartRefused), (
        f"format {fmt!r} must raise CarrierStartRefused, not {type(info.value).__name__}"
    )
    assert not codec.started


def test_a_second_start_is_refused() -> None:
    codec = started()
    with pytest.raises(CarrierProtocolError, match="a second start"):
        codec.parse(start("pcm16/16000", call_id="another"))
    assert codec.parse(control("mark", name="m1")) == ev.PlaybackMark("m1")


# -- after start -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\xff" * 160, "audio before start"),
        (b"", "audio before start"),
        (control("mark", name="m1"), "'mark' before start"),
        (control("dtmf", digit="5"), "'dtmf' before start"),
        (control("hangup", reason="bye"), "'hangup' before start"),
        (control("surprise"), "'surprise' before start"),
        ("{}", "None before start"),
    ],
)
def test_nothing_counts_before_start(frame: str | bytes, message: str) -> None:
    codec = WebRTCCodec()
    with pytest.raises(CarrierProtocolError, match=message):
        codec.parse(frame)
    assert not codec.started


def test_caller_audio_passes_through_whole() -> None:
    codec = started("pcm16/16000")
    frame = bytes(range(256)) * 2 + bytes(128)
    event = codec.parse(frame)
    assert event == ev.CallerAudio(frame)
    assert isinstance(event, ev.CallerAudio) and event.payload is frame
    assert codec.parse(b"\x01") == ev.CallerAudio(b"\x01")  # any size: the peer cut it


def test_events_after_start() -> None:
    codec = started()
    assert codec.parse(control("mark", name="m7")) == ev.PlaybackMark("m7")
    assert codec.parse(control("mark", name="")) == ev.PlaybackMark("")
    assert codec.parse(control("hangup", reason="browser connection failed")) == ev.CallerHangup(
        "browser connection failed"
    )
    assert codec.parse(control("hangup")) == ev.CallerHangup("caller hung up")
    assert codec.parse(control("hangup", reason=5)) == ev.CallerHangup("caller hung up")
    assert codec.parse(b'{"event":"mark","name":"m8"}'.decode()) == ev.PlaybackMark("m8")


@pytest.mark.parametrize("digit", sorted(DTMF_KEYS))
def test_every_keypad_key(digit: str) -> None:
    assert started().parse(control("dtmf", digit=digit)) == ev.CallerDtmf(digit)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("not json", "not JSON"),
        ("", "not JSON"),
        ("[1]", "not a JSON object"),
        ('"mark"', "not a JSON object"),
        ("{}", "unknown event None"),
        (control("surprise"), "unknown event 'surprise'"),
        ('{"event":5}', "unknown event 5"),
        ('{"event":{"x":1}}', "unknown event <dict>"),
        (control("mark"), "'name' must be a string"),
        (control("mark", name=7), "'name' must be a string"),
        (control("dtmf"), "'digit' must be a string"),
        (control("dtmf", digit=5), "'digit' must be a string"),
        (control("dtmf", digit="55"), "DTMF digit '55' is not a key"),
        (control("dtmf", digit=""), "DTMF digit '' is not a key"),
        (control("dtmf", digit="E"), "DTMF digit 'E' is not a key"),
        (control("dtmf", digit="a"), "DTMF digit 'a' is not a key"),
        (start(), "a second start"),
    ],
)
def test_bad_frames_raise_and_the_codec_carries_on(frame: str, message: str) -> None:
    codec = started()
    with pytest.raises(CarrierProtocolError, match=message) as info:
        codec.parse(frame)
    assert info.value.who == "remote"
    assert codec.parse(b"\xff" * 160) == ev.CallerAudio(b"\xff" * 160)
    assert codec.parse(control("mark", name="m1")) == ev.PlaybackMark("m1")


def test_an_oversized_frame_is_refused_unread() -> None:
    frame = control("mark", name="m" * MAX_FRAME_CHARS)
    with pytest.raises(CarrierProtocolError, match="larger than allowed"):
        started().parse(frame)


def test_deeply_nested_values_fail_cleanly() -> None:
    deep = "[" * 1010 + "]" * 1010  # orjson reads 1024 levels; repr() would stop at 1000
    for codec in (WebRTCCodec(), started()):
        with pytest.raises(CarrierProtocolError, match="<list>"):
            codec.parse('{"event":' + deep + "}")
    with pytest.raises(CarrierProtocolError, match="'digit' must be a string"):
        started().parse('{"event":"dtmf","digit":' + deep + "}")


# -- runtime → peer ----------------------------------------------------------------------------


def test_outbound_frames() -> None:
    codec = started()
    audio = bytes(range(160))
    assert codec.media(audio) is audio
    assert codec.media(b"") == b""
    assert orjson.loads(codec.mark("m12")) == {"event": "mark", "name": "m12"}
    assert orjson.loads(codec.clear()) == {"event": "clear"}
    assert orjson.loads(codec.hangup()) == {"event": "hangup"}
    for frame in (codec.mark("m12"), codec.clear(), codec.hangup()):
        assert isinstance(frame, str)


def test_control_frames_are_what_the_codec_parses() -> None:
    assert control("mark", name='é"\\') == '{"event":"mark","name":"é\\"\\\\"}'
    codec = started()
    assert codec.parse(codec.mark('a "quoted" name')) == ev.PlaybackMark('a "quoted" name')
    with pytest.raises(CarrierProtocolError, match="unknown event 'clear'"):
        codec.parse(codec.clear())  # runtime → peer only


# -- properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
EVENTS = ["start", "mark", "dtmf", "hangup", "clear", "media", "x"]
FORMAT_TEXTS = ["pcmu", "pcma", "pcm16/8000", "pcm16/16000", "pcm16/24000", "pcm16/44100", "opus"]
field_values = (
    json_values
    | st.sampled_from(EVENTS)
    | st.sampled_from(FORMAT_TEXTS)
    | st.sampled_from(sorted(DTMF_KEYS))
    | st.dictionaries(st.text(max_size=6), json_values, max_size=3)
)
messages = st.fixed_dictionaries(
    {"event": st.sampled_from(EVENTS)},
    optional={
        "call_id": field_values,
        "format": field_values,
        "parameters": field_values,
        "name": field_values,
        "digit": field_values,
        "reason": field_values,
        "other": field_values,
    },
)


def _stays_usable(codec: WebRTCCodec) -> None:
    if not codec.started:
        assert isinstance(codec.parse(start()), ev.CallStarted)
    assert codec.parse(control("mark", name="m1")) == ev.PlaybackMark("m1")


@settings(max_examples=500)
@given(
    st.one_of(
        st.binary(max_size=64),
        st.text(max_size=64),
        messages.map(json.dumps),
        messages.map(lambda m: json.dumps(m).encode()),  # JSON bytes are audio, not control
    )
)
def test_parse_returns_an_event_or_raises_its_protocol_error(frame: str | bytes) -> None:
    for codec in (WebRTCCodec(), started()):
        try:
            event = codec.parse(frame)
        except CarrierProtocolError:
            pass
        else:
            assert event is None or isinstance(event, ev.CarrierEvent)
            if isinstance(event, ev.CallStarted):
                assert all(isinstance(v, str) for v in event.custom_parameters.values())
        _stays_usable(codec)


VECTORS = [
    start("pcm16/16000", agent="demo", customer="Ada"),
    control("mark", name="m3"),
    control("dtmf", digit="#"),
    control("hangup", reason="browser connection failed"),
]


@settings(max_examples=300)
@given(st.sampled_from(VECTORS), st.data())
def test_truncated_and_split_frames_fail_cleanly(frame: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=1, max_value=len(frame) - 1))
    for part in (frame[:cut], frame[cut:]):
        for codec in (WebRTCCodec(), started()):
            with pytest.raises(CarrierProtocolError):
                codec.parse(part)
            _stays_usable(codec)


@settings(max_examples=200)
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(VECTORS[1:3])), max_size=30))
def test_audio_and_events_come_out_whole_and_in_order(frames: list[str | bytes]) -> None:
    codec = started()
    audio, seen = bytearray(), []
    for frame in frames:
        event = codec.parse(frame)
        if isinstance(frame, bytes):  # audio; an empty frame carries nothing
            assert event == (ev.CallerAudio(frame) if frame else None)
            audio += frame
        else:
            seen.append(event)
    assert bytes(audio) == b"".join(f for f in frames if isinstance(f, bytes))
    assert seen == [codec.parse(f) for f in frames if isinstance(f, str)]
