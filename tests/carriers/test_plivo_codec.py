"""Plivo audio-stream codec: every inbound event and outbound frame, bad input, and property
tests (parse or raise the protocol error — also for split and truncated frames; 16-bit audio
split anywhere stays sample-aligned, nothing lost or doubled)."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.plivo.codec import PlivoCodec, extra_headers
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

CALL = "4e5d33b6-4b1f-4f3e-9f0c-5a3c1d2e7f80"
STREAM = "b9f1b7a4-5e0c-4f3d-8c2a-1d9e6f4a2b31"
ACCOUNT = "MAZDQ1ZJIYMDZKMMZKYM"


def start(
    encoding: str = "audio/x-mulaw",
    rate: object = 8000,
    headers: object = "userId=12345;agent=demo",
) -> str:
    body = {
        "callId": CALL,
        "streamId": STREAM,
        "accountId": ACCOUNT,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": encoding, "sampleRate": rate},
    }
    return json.dumps(
        {"event": "start", "sequenceNumber": 1, "start": body, "extra_headers": headers}
    )


def media(payload: bytes, *, track: str = "inbound", seq: object = 2, stream: str = STREAM) -> str:
    body = {
        "track": track,
        "timestamp": "1767225600020",
        "chunk": 1,
        "payload": base64.b64encode(payload).decode(),
    }
    return json.dumps(
        {"event": "media", "sequenceNumber": seq, "streamId": stream, "media": body,
         "extra_headers": "userId=12345"}
    )  # fmt: skip


def event(kind: str, **body: Any) -> str:
    return json.dumps({"event": kind, "sequenceNumber": 7, "streamId": STREAM, **body})


def started(encoding: str = "audio/x-mulaw", rate: int = 8000) -> PlivoCodec:
    codec = PlivoCodec()
    codec.parse(start(encoding, rate))
    return codec


# -- inbound ---------------------------------------------------------------------------------


def test_start_gives_the_call_its_parameters_and_format() -> None:
    codec = PlivoCodec()
    assert codec.parse(start()) == ev.CallStarted(
        call_sid=CALL,
        stream_sid=STREAM,
        custom_parameters={"userId": "12345", "agent": "demo"},
        encoding="pcmu",
        sample_rate=8000,
    )
    assert (codec.stream_id, codec.call_id, codec.account_id) == (STREAM, CALL, ACCOUNT)
    assert codec.frame_ms == 20 and codec.playback == "marks" and codec.carrier == "plivo"


@pytest.mark.parametrize(
    ("encoding", "rate", "fmt"),
    [
        ("audio/x-mulaw", 8000, "pcmu"),
        ("audio/x-l16", 8000, "pcm16/8000"),
        ("audio/x-l16", 16000, "pcm16/16000"),
    ],
)
def test_every_plivo_format(encoding: str, rate: int, fmt: str) -> None:
    event = PlivoCodec().parse(start(encoding, rate))
    assert isinstance(event, ev.CallStarted)
    assert (event.encoding, event.sample_rate) == (fmt, rate)


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [
        ("audio/x-l16", 24000),
        ("audio/x-mulaw", 16000),
        ("audio/x-alaw", 8000),
        ("audio/x-l16", "16000"),
        ("audio/x-l16", True),
        (None, 8000),
    ],
)
def test_unsupported_formats_are_refused_with_the_fix(encoding: Any, rate: Any) -> None:
    codec = PlivoCodec()
    with pytest.raises(
        CarrierProtocolError, match=r"is not supported: set the <Stream contentType>"
    ):
        codec.parse(start(encoding, rate))
    assert not codec.started
    assert isinstance(codec.parse(start()), ev.CallStarted)  # still usable


def test_extra_headers_become_call_parameters() -> None:
    assert extra_headers("a=1;b=2") == {"a": "1", "b": "2"}
    assert extra_headers("a=1,b=2") == {"a": "1", "b": "2"}  # as written in the XML
    assert extra_headers(" a = 1 ;;noequals;=x;c=") == {"a": "1", "c": ""}
    assert extra_headers(None) == extra_headers("") == {}
    with pytest.raises(CarrierProtocolError, match="extra_headers"):
        extra_headers({"a": "1"})
    event = PlivoCodec().parse(start(headers=None))
    assert isinstance(event, ev.CallStarted) and event.custom_parameters == {}


def test_media_dtmf_checkpoints_and_clears() -> None:
    codec = started()
    assert codec.parse(media(b"\xff" * 160)) == ev.CallerAudio(b"\xff" * 160)
    assert codec.parse(media(b"\x00" * 160, track="outbound")) is None
    assert codec.parse(media(b"")) is None
    assert codec.parse(media(b"\x01", seq="12")) == ev.CallerAudio(b"\x01")  # string tolerated
    dtmf = {"track": "inbound", "digit": "5", "timestamp": "1767225600100"}
    assert codec.parse(event("dtmf", dtmf=dtmf)) == ev.CallerDtmf("5")
    assert codec.parse(event("playedStream", name="m3")) == ev.PlaybackMark("m3")
    assert codec.parse(event("played", name="m4")) == ev.PlaybackMark("m4")  # support-page name
    assert codec.parse(event("clearedAudio")) is None


def test_l16_media_stays_sample_aligned() -> None:
    codec = started("audio/x-l16", 16000)
    assert codec.parse(media(b"\x01\x02\x03")) == ev.CallerAudio(b"\x01\x02")
    assert codec.parse(media(b"\x04")) == ev.CallerAudio(b"\x03\x04")
    assert codec.parse(media(b"\x05")) is None  # half a sample: held
    assert codec.parse(media(b"\x06\x07\x08")) == ev.CallerAudio(b"\x05\x06\x07\x08")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("not json", "not JSON"),
        ("[1,2]", "not a JSON object"),
        ('{"event":"stop"}', "unknown event 'stop'"),
        ('{"event":"sendDTMF"}', "unknown event"),
        ("{}", "unknown event None"),
        (media(b"\xff"), "media before start"),
        (event("playedStream", name="m1"), "playedStream before start"),
        (event("clearedAudio"), "clearedAudio before start"),
        (event("dtmf", dtmf={"digit": "1"}), "dtmf before start"),
        (json.dumps({"event": "start", "sequenceNumber": 1}), "'start' must be an object"),
        (json.dumps({"event": "start", "start": {"streamId": STREAM}}), "'callId'"),
        (
            json.dumps({"event": "start", "start": {"streamId": STREAM, "callId": CALL}}),
            "'mediaFormat' must be an object",
        ),
        (start().replace('"sequenceNumber": 1', '"sequenceNumber": "one"'), "sequenceNumber"),
        (start(headers=5), "extra_headers"),
    ],
)
def test_bad_frames_before_start(frame: str, message: str) -> None:
    codec = PlivoCodec()
    with pytest.raises(CarrierProtocolError, match=message):
        codec.parse(frame)
    assert isinstance(codec.parse(start()), ev.CallStarted)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (start(), "second start"),
        (media(b"\xff", stream="other"), "media for another stream 'other'"),
        (media(b"\xff", track="both"), "neither inbound nor outbound"),
        (media(b"\xff", seq=1.5), "sequenceNumber 1.5"),
        (media(b"\xff", seq=True), "sequenceNumber True"),
        (event("media", media={"payload": "!!!"}), "not valid base64"),
        (event("media", media={"payload": 5}), "'payload' must be a string"),
        (event("media"), "'media' must be an object"),
        (event("dtmf", dtmf={"digit": "x"}), "not a keypad key"),
        (event("dtmf", dtmf={"digit": "12"}), "not a keypad key"),
        (event("dtmf", dtmf={"digit": 1}), "'digit' must be a string"),
        (event("dtmf", dtmf="1"), "'dtmf' must be an object"),
        (event("playedStream"), "'name' must be a string"),
        (event("playedStream", name=3), "'name' must be a string"),
        (event("clearedAudio", streamId="other"), "clearedAudio for another stream"),
    ],
)
def test_bad_frames_after_start_raise_and_the_codec_carries_on(frame: str, message: str) -> None:
    codec = started()
    with pytest.raises(CarrierProtocolError, match=message):
        codec.parse(frame)
    assert codec.parse(media(b"\x7f" * 160)) == ev.CallerAudio(b"\x7f" * 160)


# -- outbound --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [("audio/x-mulaw", 8000), ("audio/x-l16", 8000), ("audio/x-l16", 16000)],
)
def test_play_audio_is_in_the_streams_own_format(encoding: str, rate: int) -> None:
    codec = started(encoding, rate)
    assert json.loads(codec.media(b"\x01\x02\x03")) == {
        "event": "playAudio",
        "media": {"contentType": encoding, "sampleRate": rate, "payload": "AQID"},
    }


def test_checkpoint_and_clear_audio_shapes() -> None:
    codec = started()
    assert json.loads(codec.mark('m"7')) == {
        "event": "checkpoint",
        "streamId": STREAM,
        "name": 'm"7',
    }
    assert json.loads(codec.clear()) == {"event": "clearAudio", "streamId": STREAM}
    assert codec.hangup() is None  # hang-up goes over the REST API


@pytest.mark.parametrize("build", ["media", "mark", "clear"])
def test_nothing_is_sent_before_start(build: str) -> None:
    codec = PlivoCodec()
    send = {"media": lambda: codec.media(b"\xff"), "mark": lambda: codec.mark("m1"),
            "clear": codec.clear}[build]  # fmt: skip
    with pytest.raises(CarrierProtocolError, match="before the stream started") as info:
        send()
    assert info.value.who == "local"


# -- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
field_names = st.sampled_from(
    ["event", "sequenceNumber", "streamId", "media", "payload", "track", "dtmf", "digit",
     "name", "start", "callId", "mediaFormat", "encoding", "sampleRate", "extra_headers"]
)  # fmt: skip
kinds = st.sampled_from(["start", "media", "dtmf", "playedStream", "played", "clearedAudio"])
messages = st.dictionaries(field_names, json_values | kinds, max_size=6)


def _parse_or_raise(codec: PlivoCodec, frame: str | bytes) -> None:
    try:
        codec.parse(frame)
    except CarrierProtocolError:
        pass


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64), messages.map(json.dumps)))
def test_parse_returns_an_event_or_raises_its_protocol_error(frame: str | bytes) -> None:
    for codec in (PlivoCodec(), started(), started("audio/x-l16", 16000)):
        _parse_or_raise(codec, frame)


@settings(max_examples=300)
@given(kinds, messages)
def test_known_events_with_arbitrary_bodies_parse_or_raise(kind: str, body: dict[str, Any]) -> None:
    frame = json.dumps({**body, "event": kind})
    for codec in (PlivoCodec(), started()):
        _parse_or_raise(codec, frame)


VALID = [
    start(),
    media(b"\x00\x01" * 80),
    event("dtmf", dtmf={"track": "inbound", "digit": "#", "timestamp": "1"}),
    event("playedStream", name="m1"),
    event("clearedAudio"),
]


@settings(max_examples=300)
@given(st.sampled_from(VALID), st.data())
def test_truncated_and_split_frames_fail_cleanly(frame: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(1, len(frame) - 1))  # a proper prefix and suffix
    for part in (frame[:cut], frame[cut:], frame[:cut].encode()):
        for codec in (PlivoCodec(), started()):
            with pytest.raises(CarrierProtocolError):
                codec.parse(part)


@settings(max_examples=300)
@given(st.binary(min_size=0, max_size=400), st.lists(st.integers(0, 400), max_size=12))
def test_l16_audio_split_anywhere_comes_out_whole_and_aligned(
    audio: bytes, cuts: list[int]
) -> None:
    codec = started("audio/x-l16", 8000)
    bounds = sorted({0, len(audio), *(c for c in cuts if c <= len(audio))})
    out = bytearray()
    for lo, hi in itertools.pairwise(bounds):
        got = codec.parse(media(audio[lo:hi]))
        if got is not None:
            assert isinstance(got, ev.CallerAudio)
            assert len(got.payload) % 2 == 0  # whole samples, every time
            out += got.payload
    whole = len(audio) - len(audio) % 2
    assert bytes(out) == audio[:whole]  # in order, nothing lost or doubled (a half sample waits)


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["media", "dtmf", "played", "cleared", "bad"]), max_size=20))
def test_any_order_of_events_after_start_gives_the_same_events(order: list[str]) -> None:
    """Interleaving never changes what one event means (no hidden state but the half sample)."""
    codec = started()
    frames = {
        "media": (media(b"\x11" * 160), ev.CallerAudio(b"\x11" * 160)),
        "dtmf": (event("dtmf", dtmf={"digit": "9"}), ev.CallerDtmf("9")),
        "played": (event("playedStream", name="m9"), ev.PlaybackMark("m9")),
        "cleared": (event("clearedAudio"), None),
    }
    for kind in order:
        if kind == "bad":
            with pytest.raises(CarrierProtocolError):
                codec.parse(media(b"", stream="x"))
            continue
        frame, expected = frames[kind]
        assert codec.parse(frame) == expected
