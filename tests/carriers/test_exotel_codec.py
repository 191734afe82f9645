"""Exotel voicebot codec: every inbound event and outbound frame, the chunk size chosen per
format, bad input, and property tests (parse or raise the protocol error — also for split and
truncated frames; 16-bit audio split anywhere stays sample-aligned, nothing lost or doubled)."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.base import bytes_per_ms
from bridge.carriers.exotel.codec import (
    CHUNK_MULTIPLE,
    MIN_CHUNK_BYTES,
    ExotelCodec,
    chunk_ms,
    parse_encoding,
)
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

STREAM = "b2c1f1a0e6f34b1c9d2e7f8a1b2c3d4e"
CALL = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
CONNECTED = '{"event":"connected"}'


def start(fmt: object = None, *, params: object = None, **extra: Any) -> str:
    body: dict[str, Any] = {
        "stream_sid": STREAM,
        "call_sid": CALL,
        "account_sid": "exotel1",
        "from": "09876543210",
        "to": "08047491899",
        "custom_parameters": {"agent": "demo"} if params is None else params,
        **extra,
    }
    if fmt is not None:
        body["media_format"] = fmt
    return json.dumps(
        {"event": "start", "sequence_number": "1", "stream_sid": STREAM, "start": body}
    )


def pcm(rate: str = "8000", encoding: str = "audio/x-raw") -> dict[str, str]:
    return {"encoding": encoding, "sample_rate": rate, "bit_rate": "16"}


def media(payload: bytes, *, seq: object = "2", stream: str = STREAM, **more: Any) -> str:
    body = {"chunk": "1", "timestamp": "100", "payload": base64.b64encode(payload).decode()}
    return json.dumps(
        {"event": "media", "sequence_number": seq, "stream_sid": stream,
         "media": {**body, **more}}
    )  # fmt: skip


def event(kind: str, **body: Any) -> str:
    return json.dumps({"event": kind, "sequence_number": "7", "stream_sid": STREAM, **body})


def started(fmt: object = None, url_rate: str | None = None) -> ExotelCodec:
    codec = ExotelCodec(url_rate)
    assert codec.parse(CONNECTED) is None
    codec.parse(start(pcm() if fmt is None else fmt))
    return codec


# -- inbound ---------------------------------------------------------------------------------


def test_start_gives_the_call_its_parameters_and_format() -> None:
    codec = ExotelCodec()
    assert codec.parse(start(pcm())) == ev.CallStarted(
        call_sid=CALL,
        stream_sid=STREAM,
        custom_parameters={"agent": "demo", "from": "09876543210", "to": "08047491899"},
        encoding="pcm16/8000",
        sample_rate=8000,
    )
    assert (codec.stream_sid, codec.account_sid) == (STREAM, "exotel1")
    assert codec.carrier == "exotel" and codec.playback == "marks" and codec.frame_ms == 200


@pytest.mark.parametrize(
    ("fmt", "url_rate", "expected", "frame_ms"),
    [
        (pcm("8000"), None, "pcm16/8000", 200),
        (pcm("16000"), None, "pcm16/16000", 100),
        (pcm("24000"), None, "pcm16/24000", 100),
        (pcm("16000"), "8000", "pcm16/16000", 100),  # the start says what is streamed
        ({"encoding": "audio/x-raw"}, "24000", "pcm16/24000", 100),  # else the URL's rate
        ({"encoding": "audio/x-raw"}, None, "pcm16/8000", 200),  # else the base protocol
        (None, "16000", "pcm16/16000", 100),
        ({"encoding": "audio/L16;rate=16000"}, None, "pcm16/16000", 100),
        ({"sample_rate": 16000}, None, "pcm16/16000", 100),
        ({"encoding": "audio/x-mulaw;rate=8000"}, "16000", "pcmu", 400),  # URL rate is PCM's
        ({"encoding": "audio/x-mulaw", "sample_rate": "8000", "bit_rate": "8"}, None, "pcmu", 400),
    ],
)
def test_formats_and_chunk_sizes(
    fmt: object, url_rate: str | None, expected: str, frame_ms: int
) -> None:
    codec = ExotelCodec(url_rate)
    got = codec.parse(start(fmt))
    assert isinstance(got, ev.CallStarted) and got.encoding == expected
    assert codec.frame_ms == frame_ms
    size = bytes_per_ms(expected) * frame_ms
    assert size >= MIN_CHUNK_BYTES and size % CHUNK_MULTIPLE == 0 and frame_ms >= 100


def test_chunk_ms_is_the_shortest_valid_duration() -> None:
    for fmt in ("pcmu", "pcm16/8000", "pcm16/16000", "pcm16/24000"):
        ms = chunk_ms(fmt)
        rate = bytes_per_ms(fmt)
        assert rate * ms >= 3200 and rate * ms % 320 == 0 and ms >= 100
        shorter = [m for m in range(100, ms) if rate * m >= 3200 and rate * m % 320 == 0]
        assert shorter == []
    assert {f: chunk_ms(f) for f in ("pcmu", "pcm16/8000", "pcm16/16000", "pcm16/24000")} == {
        "pcmu": 400,
        "pcm16/8000": 200,
        "pcm16/16000": 100,
        "pcm16/24000": 100,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ("pcm16", None)),
        ("", ("pcm16", None)),
        ("audio/x-raw", ("pcm16", None)),
        ("SLIN", ("pcm16", None)),
        ("audio/L16; rate=24000", ("pcm16", 24000)),
        ("audio/x-mulaw;rate=8000", ("pcmu", 8000)),
        ("ulaw;channels=1", ("pcmu", None)),
    ],
)
def test_encoding_names(raw: object, expected: tuple[str, int | None]) -> None:
    assert parse_encoding(raw) == expected


@pytest.mark.parametrize(
    ("fmt", "url_rate", "message"),
    [
        (pcm("44100"), None, "pcm16 at 44100 Hz is not supported"),
        (pcm("fast"), None, "media_format.sample_rate 'fast' is not a number of Hz"),
        ({"sample_rate": 8000.0}, None, "is not a number of Hz"),
        ({"sample_rate": True}, None, "is not a number of Hz"),
        ({"encoding": "audio/x-raw"}, "11025", "pcm16 at 11025 Hz is not supported"),
        ({"encoding": "audio/x-raw"}, "high", "the URL's sample-rate 'high'"),
        ({"encoding": "audio/x-mulaw", "sample_rate": "16000"}, None, "G.711 is 8000 Hz only"),
        ({"encoding": "opus"}, None, "Exotel encoding 'opus' is not supported"),
        ({"encoding": 16}, None, "encoding must be a string"),
        ({"encoding": "audio/L16;rate=x"}, None, "encoding rate 'x'"),
        ("pcm", None, "media_format must be an object"),
    ],
)
def test_unsupported_formats_are_refused_clearly(
    fmt: object, url_rate: str | None, message: str
) -> None:
    codec = ExotelCodec(url_rate)
    with pytest.raises(CarrierProtocolError, match=message):
        codec.parse(start(fmt))
    assert not codec.started
    assert isinstance(codec.parse(start(pcm())), ev.CallStarted)  # still usable


def test_custom_parameters() -> None:
    got = ExotelCodec().parse(start(params={"a": "x", "n": 5, "f": 1.5}))
    assert isinstance(got, ev.CallStarted)
    assert got.custom_parameters == {
        "a": "x", "n": "5", "f": "1.5", "from": "09876543210", "to": "08047491899",
    }  # fmt: skip
    got = ExotelCodec().parse(start(params={"from": "override"}))
    assert isinstance(got, ev.CallStarted) and got.custom_parameters["from"] == "override"
    with pytest.raises(CarrierProtocolError, match="custom parameter 'x'"):
        ExotelCodec().parse(start(params={"x": [1]}))
    with pytest.raises(CarrierProtocolError, match="custom parameter 'x'"):
        ExotelCodec().parse(start(params={"x": True}))
    with pytest.raises(CarrierProtocolError, match="custom_parameters must be an object"):
        ExotelCodec().parse(start(params="a=1"))


def test_stream_sid_may_be_only_at_the_top_level() -> None:
    frame = json.loads(start(pcm()))
    del frame["start"]["stream_sid"]
    got = ExotelCodec().parse(json.dumps(frame))
    assert isinstance(got, ev.CallStarted) and got.stream_sid == STREAM
    del frame["stream_sid"]
    with pytest.raises(CarrierProtocolError, match="stream_sid must be a non-empty string"):
        ExotelCodec().parse(json.dumps(frame))


def test_media_dtmf_marks_and_stop() -> None:
    codec = started()
    audio = b"\x01\x00" * 1600
    assert codec.parse(media(audio)) == ev.CallerAudio(audio)
    assert codec.parse(media(b"\x00\x00" * 8, track="outbound")) is None
    assert codec.parse(media(b"\x00\x00", track="inbound")) == ev.CallerAudio(b"\x00\x00")
    assert codec.parse(media(b"")) is None
    assert codec.parse(media(b"\x02\x00", seq=12)) == ev.CallerAudio(b"\x02\x00")  # tolerated
    assert codec.parse(event("dtmf", dtmf={"digit": "*", "duration": "200"})) == ev.CallerDtmf("*")
    assert codec.parse(event("mark", mark={"name": "m5"})) == ev.PlaybackMark("m5")
    assert codec.parse(event("stop", stop={"reason": "callended"})) == ev.CallerHangup(
        "Exotel stopped the stream"
    )
    assert codec.stopped


def test_stop_before_start_is_a_hang_up() -> None:
    """The runtime's handshake turns it into a clean 'stopped before start'."""
    assert ExotelCodec().parse('{"event":"stop"}') == ev.CallerHangup("Exotel stopped the stream")


def test_mulaw_media_is_passed_as_is() -> None:
    codec = started({"encoding": "audio/x-mulaw", "sample_rate": "8000"})
    assert codec.parse(media(b"\x7f\xff\x00")) == ev.CallerAudio(b"\x7f\xff\x00")


def test_pcm_media_stays_sample_aligned() -> None:
    codec = started()
    assert codec.parse(media(b"\x01\x02\x03")) == ev.CallerAudio(b"\x01\x02")
    assert codec.parse(media(b"\x04")) == ev.CallerAudio(b"\x03\x04")
    assert codec.parse(media(b"\x05")) is None
    assert codec.parse(media(b"\x06\x07\x08")) == ev.CallerAudio(b"\x05\x06\x07\x08")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("not json", "not JSON"),
        ("[1,2]", "not a JSON object"),
        ('{"event":"clear"}', "unknown event 'clear'"),
        (media(b"\x00\x00"), "media before start"),
        (event("mark", mark={"name": "m1"}), "mark before start"),
        (event("dtmf", dtmf={"digit": "1"}), "dtmf before start"),
        ('{"event":"start","sequence_number":"1"}', "'start' must be an object"),
        (start(pcm()).replace('"sequence_number": "1"', '"sequence_number": "x1"'), "x1"),
        ('{"event":"stop","sequence_number":[]}', "sequence_number"),
    ],
)
def test_bad_frames_before_start(frame: str, message: str) -> None:
    codec = ExotelCodec()
    with pytest.raises(CarrierProtocolError, match=message):
        codec.parse(frame)
    assert isinstance(codec.parse(start(pcm())), ev.CallStarted)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (start(pcm()), "second start"),
        (media(b"\x00\x00", stream="other"), "media for another stream 'other'"),
        (media(b"\x00\x00", track="both"), "neither inbound nor outbound"),
        (media(b"\x00\x00", seq=False), "sequence_number False"),
        (event("media", media={"payload": "!!!"}), "not valid base64"),
        (event("media", media={"payload": None}), "'payload' must be a string"),
        (event("media"), "'media' must be an object"),
        (event("dtmf", dtmf={"digit": "x"}), "not a keypad key"),
        (event("dtmf", dtmf={"digit": ""}), "not a keypad key"),
        (event("dtmf", dtmf=[]), "'dtmf' must be an object"),
        (event("mark", mark={}), "'name' must be a string"),
        (event("mark", mark="m1"), "'mark' must be an object"),
    ],
)
def test_bad_frames_after_start_raise_and_the_codec_carries_on(frame: str, message: str) -> None:
    codec = started()
    with pytest.raises(CarrierProtocolError, match=message):
        codec.parse(frame)
    assert codec.parse(media(b"\x07\x00" * 160)) == ev.CallerAudio(b"\x07\x00" * 160)


# -- outbound --------------------------------------------------------------------------------


def test_outbound_frames_are_exact_exotel_shapes() -> None:
    codec = started()
    assert json.loads(codec.media(b"\x01\x02\x03")) == {
        "event": "media",
        "stream_sid": STREAM,
        "media": {"payload": "AQID"},
    }
    assert json.loads(codec.mark('m"1')) == {
        "event": "mark",
        "stream_sid": STREAM,
        "mark": {"name": 'm"1'},
    }
    assert json.loads(codec.clear()) == {"event": "clear", "stream_sid": STREAM}
    assert codec.hangup() is None  # closing the socket ends the applet


@pytest.mark.parametrize("build", ["media", "mark", "clear"])
def test_nothing_is_sent_before_start(build: str) -> None:
    codec = ExotelCodec()
    send = {"media": lambda: codec.media(b"\x00" * 3200), "mark": lambda: codec.mark("m1"),
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
    ["event", "sequence_number", "stream_sid", "media", "payload", "track", "dtmf", "digit",
     "mark", "name", "start", "call_sid", "media_format", "encoding", "sample_rate",
     "custom_parameters"]
)  # fmt: skip
kinds = st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop"])
messages = st.dictionaries(field_names, json_values | kinds, max_size=6)


def _parse_or_raise(codec: ExotelCodec, frame: str | bytes) -> None:
    try:
        codec.parse(frame)
    except CarrierProtocolError:
        pass


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64), messages.map(json.dumps)))
def test_parse_returns_an_event_or_raises_its_protocol_error(frame: str | bytes) -> None:
    for codec in (ExotelCodec("16000"), started(), started({"encoding": "audio/x-mulaw"})):
        _parse_or_raise(codec, frame)


@settings(max_examples=300)
@given(kinds, messages, messages)
def test_known_events_with_arbitrary_bodies_parse_or_raise(
    kind: str, body: dict[str, Any], inner: dict[str, Any]
) -> None:
    frame = json.dumps({**body, "event": kind})
    nested = json.dumps({"event": kind, kind: inner, "stream_sid": STREAM})
    for codec in (ExotelCodec(), started()):
        _parse_or_raise(codec, frame)
        _parse_or_raise(codec, nested)


VALID = [
    CONNECTED,
    start(pcm()),
    media(b"\x00\x01" * 80),
    event("dtmf", dtmf={"digit": "#", "duration": "100"}),
    event("mark", mark={"name": "m1"}),
    event("stop", stop={"reason": "callended"}),
]


@settings(max_examples=300)
@given(st.sampled_from(VALID), st.data())
def test_truncated_and_split_frames_fail_cleanly(frame: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(1, len(frame) - 1))  # a proper prefix and suffix
    for part in (frame[:cut], frame[cut:], frame[:cut].encode()):
        for codec in (ExotelCodec(), started()):
            with pytest.raises(CarrierProtocolError):
                codec.parse(part)


@settings(max_examples=300)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=12))
def test_pcm_audio_split_anywhere_comes_out_whole_and_aligned(
    audio: bytes, cuts: list[int]
) -> None:
    codec = started()
    bounds = sorted({0, len(audio), *(c for c in cuts if c <= len(audio))})
    out = bytearray()
    for lo, hi in itertools.pairwise(bounds):
        got = codec.parse(media(audio[lo:hi]))
        if got is not None:
            assert isinstance(got, ev.CallerAudio)
            assert len(got.payload) % 2 == 0
            out += got.payload
    whole = len(audio) - len(audio) % 2
    assert bytes(out) == audio[:whole]


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["media", "dtmf", "mark", "bad"]), max_size=20))
def test_any_order_of_events_after_start_gives_the_same_events(order: list[str]) -> None:
    codec = started()
    frames = {
        "media": (media(b"\x11\x00" * 800), ev.CallerAudio(b"\x11\x00" * 800)),
        "dtmf": (event("dtmf", dtmf={"digit": "0"}), ev.CallerDtmf("0")),
        "mark": (event("mark", mark={"name": "m2"}), ev.PlaybackMark("m2")),
    }
    for kind in order:
        if kind == "bad":
            with pytest.raises(CarrierProtocolError):
                codec.parse(media(b"", stream="x"))
            continue
        frame, expected = frames[kind]
        assert codec.parse(frame) == expected
