"""Asterisk chan_websocket codec: every event in both control formats, every outbound frame,
chunk sizing, bad input, and property tests (parse or raise; split and truncated frames;
outbound frames always whole optimal frames)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.asterisk.codec import (
    FORMATS,
    MAX_COMMAND_BYTES,
    MAX_MESSAGE_BYTES,
    AsteriskCodec,
    chunk_ms,
)
from bridge.carriers.base import MAX_FRAME_CHARS, FlowPaused, FlowResumed
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

CONN = "e226e283-c90a-4ea9-9e37-389000b9ef47"
CHAN_ID = "pbx1-123456789.999"

# As chan_websocket.c prints them (ast_asprintf / ast_json_dump_string_format COMPACT).
PLAIN_START = (
    f"MEDIA_START connection_id:{CONN} channel:WebSocket/connection1/0x7f3c2c0011a8 "
    f"channel_id:{CHAN_ID} format:ulaw optimal_frame_size:160 ptime:20"
)
JSON_START = (
    '{"event":"MEDIA_START","connection_id":"%s","channel":"WebSocket/connection1/0x7f3c2c0011a8",'
    '"channel_id":"%s","format":"ulaw","optimal_frame_size":160,"ptime":20,'
    '"channel_variables":{"MEDIA_WEBSOCKET_CONNECTION_ID":"%s","_agent":"demo","__tier":"gold"}}'
    % (CONN, CHAN_ID, CONN)
)


def plain_start(fmt: str = "ulaw", size: int = 160, ptime: int = 20) -> str:
    return (
        f"MEDIA_START connection_id:{CONN} channel:WebSocket/c1/0x1 channel_id:{CHAN_ID} "
        f"format:{fmt} optimal_frame_size:{size} ptime:{ptime}"
    )


def json_start(**fields: Any) -> str:
    body = {
        "event": "MEDIA_START",
        "connection_id": CONN,
        "channel": "WebSocket/c1/0x1",
        "channel_id": CHAN_ID,
        "format": "ulaw",
        "optimal_frame_size": 160,
        "ptime": 20,
        **fields,
    }
    return json.dumps(body)


def started(control: str = "plain", **fields: Any) -> AsteriskCodec:
    codec = AsteriskCodec()
    event = codec.parse(json_start(**fields) if control == "json" else plain_start(**fields))
    assert isinstance(event, ev.CallStarted)
    return codec


def jev(event: str, **fields: Any) -> str:
    return json.dumps({"event": event, "channel_id": CHAN_ID, **fields})


# -- MEDIA_START -----------------------------------------------------------------------------


def test_plain_media_start_gives_the_call() -> None:
    codec = AsteriskCodec()
    assert codec.parse(PLAIN_START) == ev.CallStarted(
        call_sid=CHAN_ID, stream_sid=CONN, custom_parameters={}, encoding="pcmu", sample_rate=8000
    )
    assert (codec.control, codec.frame_ms, codec.optimal_frame_size) == ("plain", 20, 160)
    assert codec.channel == "WebSocket/connection1/0x7f3c2c0011a8"


def test_json_media_start_gives_channel_variables_as_parameters() -> None:
    codec = AsteriskCodec()
    event = codec.parse(JSON_START)
    assert isinstance(event, ev.CallStarted)
    assert (event.call_sid, event.stream_sid, event.encoding) == (CHAN_ID, CONN, "pcmu")
    # inheritance prefixes (_agent set in the dialplan reaches the channel as _agent) are cut
    assert event.custom_parameters == {
        "MEDIA_WEBSOCKET_CONNECTION_ID": CONN,
        "agent": "demo",
        "tier": "gold",
    }
    assert codec.control == "json"


def test_pretty_printed_json_is_read_too() -> None:
    pretty = json.dumps(json.loads(JSON_START), indent=4)
    assert isinstance(AsteriskCodec().parse("\n" + pretty + "\n"), ev.CallStarted)


def test_media_start_of_older_asterisk_without_channel_id_or_ptime() -> None:
    codec = AsteriskCodec()
    event = codec.parse(
        f"MEDIA_START connection_id:{CONN} channel:WebSocket/c1/0x1 format:ulaw "
        "optimal_frame_size:160"
    )
    assert isinstance(event, ev.CallStarted)
    assert (event.call_sid, event.stream_sid, codec.frame_ms) == ("", CONN, 20)
    assert codec.parse("DTMF_END digit:1") == ev.CallerDtmf("1")


@pytest.mark.parametrize(
    ("fmt", "size", "encoding", "rate", "silence"),
    [
        ("ulaw", 160, "pcmu", 8000, 0xFF),
        ("alaw", 160, "pcma", 8000, 0xD5),
        ("slin", 320, "pcm16/8000", 8000, 0x00),
        ("slin16", 640, "pcm16/16000", 16000, 0x00),
        ("slin24", 960, "pcm16/24000", 24000, 0x00),
    ],
)
def test_formats(fmt: str, size: int, encoding: str, rate: int, silence: int) -> None:
    codec = AsteriskCodec()
    event = codec.parse(plain_start(fmt, size))
    assert isinstance(event, ev.CallStarted)
    assert (event.encoding, event.sample_rate, codec.frame_ms) == (encoding, rate, 20)
    assert codec.media(b"\x01\x02") == b"\x01\x02" + bytes([silence]) * (size - 2)


@pytest.mark.parametrize("fmt", ["opus", "g729", "speex", "g722", "slin48", "ULAW", "gsm"])
def test_other_formats_are_refused_with_the_dial_string_fix(fmt: str) -> None:
    codec = AsteriskCodec()
    with pytest.raises(CarrierProtocolError, match=r"not supported: dial .* c\(ulaw\)"):
        codec.parse(plain_start(fmt, 160))
    assert codec.refused is not None and fmt in codec.refused
    assert codec.parse(b"\x01" * 60) is None  # passthrough media after the refusal: quiet
    with pytest.raises(CarrierProtocolError, match="before MEDIA_START"):
        codec.parse("MEDIA_XOFF")
    assert codec.parse(plain_start()) is not None  # a good start is still taken


@pytest.mark.parametrize(
    ("start", "problem"),
    [
        (plain_start(size=0), "optimal_frame_size"),
        (plain_start(size=70_000), "optimal_frame_size"),
        (plain_start("slin16", 641), "whole number of slin16 samples"),
        (plain_start(ptime=0), "ptime"),
        (plain_start().replace("optimal_frame_size:160", "optimal_frame_size:abc"), "optimal"),
        (plain_start().replace("optimal_frame_size:160", "optimal_frame_size:²"), "optimal"),
        (plain_start().replace(f"connection_id:{CONN} ", ""), "connection_id"),
        (plain_start().replace("format:ulaw", "format:"), "format"),
        (plain_start() + " stray", "malformed plain-text field"),
        (json_start(optimal_frame_size=True), "optimal_frame_size"),
        (json_start(optimal_frame_size=160.5), "optimal_frame_size"),
        (json_start(channel_id=7), "channel_id"),
        (json_start(channel_variables=["a"]), "channel_variables"),
        (json_start(channel_variables={"agent": 5}), "channel variable 'agent'"),
        (json_start(format=None), "format"),
    ],
)
def test_malformed_media_start(start: str, problem: str) -> None:
    codec = AsteriskCodec()
    with pytest.raises(CarrierProtocolError, match=problem):
        codec.parse(start)
    assert not codec.started


def test_a_second_media_start_is_refused() -> None:
    codec = started()
    with pytest.raises(CarrierProtocolError, match="second MEDIA_START"):
        codec.parse(plain_start())


# -- chunk sizing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "rate", "ptime", "ms"),
    [
        (160, 8, 20, 20),  # ulaw: 20 ms frames
        (640, 32, 20, 20),  # slin16
        (960, 48, 20, 20),  # slin24
        (240, 8, 30, 30),  # a 30 ms ptime
        (80, 8, 20, 20),  # 10 ms frames: two per chunk
        (100, 8, 20, 25),  # 12.5 ms frames: two per 25 ms chunk
        (161, 8, 20, 161),  # odd frames: the first whole-ms multiple
    ],
)
def test_chunk_ms(size: int, rate: int, ptime: int, ms: int) -> None:
    assert chunk_ms(size, rate, ptime) == ms


def test_twelve_and_a_half_ms_frames_make_25_ms_chunks() -> None:
    codec = started(size=100)
    assert codec.frame_ms == 25
    assert len(codec.media(b"\x00" * 200)) == 200  # the session's chunk: two whole frames
    assert len(codec.media(b"\x00" * 120)) == 200  # a short last chunk: padded, not dropped


def test_no_chunk_fits_a_message() -> None:
    with pytest.raises(CarrierProtocolError, match="no whole-millisecond chunk"):
        chunk_ms(MAX_MESSAGE_BYTES, 8, 20)
    with pytest.raises(CarrierProtocolError, match="no whole-millisecond chunk"):
        AsteriskCodec().parse(plain_start("ulaw", 65_499))  # 8187.375 ms frames


@settings(max_examples=400)
@given(st.integers(1, MAX_MESSAGE_BYTES), st.sampled_from([8, 16, 32, 48]), st.integers(1, 500))
def test_chunks_are_the_shortest_whole_frames_at_least_ptime(
    size: int, rate: int, ptime: int
) -> None:
    try:
        ms = chunk_ms(size, rate, ptime)
    except CarrierProtocolError:
        step = size // __import__("math").gcd(size, rate)
        assert step * -(-ptime // step) * rate > MAX_MESSAGE_BYTES
        return
    assert ms >= ptime
    assert (ms * rate) % size == 0
    assert ms * rate <= MAX_MESSAGE_BYTES
    assert not any((d * rate) % size == 0 for d in range(ptime, ms))  # none shorter


# -- events ----------------------------------------------------------------------------------


@pytest.mark.parametrize("control", ["plain", "json"])
def test_events_in_both_formats(control: str) -> None:
    codec = started(control)

    def frame(event: str, plain: str, **fields: Any) -> str:
        return jev(event, **fields) if control == "json" else plain

    assert codec.parse(b"\x7f" * 160) == ev.CallerAudio(b"\x7f" * 160)
    assert codec.parse(b"") is None
    mark = frame("MEDIA_MARK_PROCESSED", "MEDIA_MARK_PROCESSED m12", correlation_id="m12")
    assert codec.parse(mark) == ev.PlaybackMark("m12")
    dtmf = frame("DTMF_END", f"DTMF_END digit:# channel_id:{CHAN_ID}", digit="#")
    assert codec.parse(dtmf) == ev.CallerDtmf("#")
    assert codec.parse(frame("MEDIA_XOFF", "MEDIA_XOFF")) == FlowPaused()
    assert codec.paused
    assert codec.parse(frame("MEDIA_XON", "MEDIA_XON")) == FlowResumed()
    assert not codec.paused
    status = frame(
        "STATUS",
        f"STATUS channel_id:{CHAN_ID} queue_length:43 xon_level:800 xoff_level:900 "
        "queue_full:false bulk_media:true media_paused:false",
        queue_length=43, xon_level=800, xoff_level=900, queue_full=False, bulk_media=True,
        media_paused=False,
    )  # fmt: skip
    assert codec.parse(status) is None
    assert codec.parse(frame("QUEUE_DRAINED", "QUEUE_DRAINED")) is None
    done = frame("MEDIA_BUFFERING_COMPLETED", "MEDIA_BUFFERING_COMPLETED b1", correlation_id="b1")
    assert codec.parse(done) is None
    error = frame(
        "ERROR",
        f"ERROR channel_id:{CHAN_ID} error_text:MARK_MEDIA not supported in passthrough mode",
        error_text="MARK_MEDIA not supported in passthrough mode",
    )
    with pytest.raises(CarrierProtocolError, match="Asterisk error: MARK_MEDIA not supported"):
        codec.parse(error)
    assert codec.parse(mark) == ev.PlaybackMark("m12")  # still usable after the error


def test_plain_error_without_error_text_keeps_what_it_says() -> None:
    with pytest.raises(CarrierProtocolError, match="Asterisk error: something broke"):
        started().parse("ERROR something broke")


@pytest.mark.parametrize(
    ("control", "frame", "problem"),
    [
        ("plain", "MEDIA_MARK_PROCESSED", "without a correlation id"),
        ("json", jev("MEDIA_MARK_PROCESSED", correlation_id=""), "without a correlation id"),
        ("json", jev("MEDIA_MARK_PROCESSED", correlation_id=3), "without a correlation id"),
        ("plain", "DTMF_END digit:X", "not a keypad key"),
        ("plain", "DTMF_END digit:12", "not a keypad key"),
        ("plain", "DTMF_END", "'digit'"),
        ("json", jev("DTMF_END", digit=5), "'digit'"),
        ("plain", "media_xoff", "unknown event"),  # case-sensitive
        ("plain", "HANGUP", "unknown event"),
        ("json", jev("MEDIA_END"), "unknown event"),
        ("json", '{"command":"MARK_MEDIA","correlation_id":"m1"}', "a command frame"),
        ("json", '{"event":5}', "without an 'event'"),
        ("json", "[1,2]", "not a JSON object"),
        ("json", '{"event":"MEDIA_XON"', "not JSON"),
        ("json", "MEDIA_XON", "plain control frame on a json channel"),
        ("plain", jev("MEDIA_XON"), "json control frame on a plain channel"),
        (
            "json",
            json.dumps({"event": "MEDIA_XON", "channel_id": "other"}),
            "event for channel 'other'",
        ),
        ("plain", "DTMF_END digit:1 channel_id:other", "event for channel 'other'"),
        ("plain", "   ", "empty control frame"),
        ("plain", "DTMF_END digit", "malformed plain-text field"),
        ("plain", "x" * (MAX_FRAME_CHARS + 1), "too large"),
    ],
)
def test_bad_events(control: str, frame: str, problem: str) -> None:
    codec = started(control)
    with pytest.raises(CarrierProtocolError, match=problem):
        codec.parse(frame)
    assert codec.parse(b"\xff" * 160) == ev.CallerAudio(b"\xff" * 160)  # still usable


def test_nothing_before_media_start() -> None:
    codec = AsteriskCodec()
    with pytest.raises(CarrierProtocolError, match="media before MEDIA_START"):
        codec.parse(b"\xff" * 160)
    with pytest.raises(CarrierProtocolError, match="MEDIA_MARK_PROCESSED before MEDIA_START"):
        codec.parse("MEDIA_MARK_PROCESSED m1")
    with pytest.raises(CarrierProtocolError, match="unknown event"):
        codec.parse("HELLO there")


def test_slin_frames_must_be_whole_samples() -> None:
    codec = started(fmt="slin16", size=640)
    assert codec.parse(b"\x00\x01" * 320) == ev.CallerAudio(b"\x00\x01" * 320)
    with pytest.raises(CarrierProtocolError, match="not whole 16-bit samples"):
        codec.parse(b"\x00" * 641)


# -- outbound --------------------------------------------------------------------------------


def test_plain_commands() -> None:
    codec = started()
    assert codec.media(b"\x00" * 160) == b"\x00" * 160
    assert codec.media(b"\x00" * 100) == b"\x00" * 100 + b"\xff" * 60
    assert codec.mark("m7") == "MARK_MEDIA m7"
    assert codec.clear() == "FLUSH_MEDIA"
    assert codec.hangup() == "HANGUP"


def test_json_commands() -> None:
    codec = started("json")
    assert json.loads(codec.mark("m7")) == {"command": "MARK_MEDIA", "correlation_id": "m7"}
    assert json.loads(codec.clear()) == {"command": "FLUSH_MEDIA"}
    assert json.loads(codec.hangup() or "") == {"command": "HANGUP"}
    assert codec.media(b"\x01" * 320) == b"\x01" * 320


def test_outbound_refusals_are_local_errors() -> None:
    with pytest.raises(CarrierProtocolError, match="before MEDIA_START") as info:
        AsteriskCodec().media(b"\x00" * 160)
    assert info.value.who == "local"
    assert AsteriskCodec().hangup() is None
    codec = started()
    with pytest.raises(CarrierProtocolError, match="65500-byte limit") as info:
        codec.media(b"\x00" * (MAX_MESSAGE_BYTES + 1))
    assert info.value.who == "local"
    for bad in ("", " m1", "m1 "):
        with pytest.raises(CarrierProtocolError, match="would not come back"):
            codec.mark(bad)
    with pytest.raises(CarrierProtocolError, match="128-byte"):
        codec.mark("m" * MAX_COMMAND_BYTES)
    with pytest.raises(CarrierProtocolError, match="128-byte"):
        started("json").mark("m" * 90)


# -- properties ------------------------------------------------------------------------------


def _fresh(kind: str) -> AsteriskCodec:
    return AsteriskCodec() if kind == "new" else started(kind)


@settings(max_examples=400)
@given(st.sampled_from(["new", "plain", "json"]), st.binary(max_size=80) | st.text(max_size=80))
def test_random_frames_parse_or_raise(kind: str, frame: str | bytes) -> None:
    codec = _fresh(kind)
    try:
        codec.parse(frame)
    except CarrierProtocolError:
        pass


_VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)


@settings(max_examples=400)
@given(
    st.sampled_from(["new", "json"]),
    st.sampled_from(sorted(["MEDIA_START", "MEDIA_MARK_PROCESSED", "DTMF_END", "MEDIA_XOFF",
                            "MEDIA_XON", "STATUS", "ERROR", "QUEUE_DRAINED", "X"])),
    st.dictionaries(
        st.sampled_from(["connection_id", "channel", "channel_id", "format", "optimal_frame_size",
                         "ptime", "channel_variables", "digit", "correlation_id", "error_text"]),
        _VALUES | st.dictionaries(st.text(max_size=5), _VALUES, max_size=3) | st.lists(_VALUES, max_size=2),
        max_size=6,
    ),
)  # fmt: skip
def test_malformed_json_events_parse_or_raise(
    kind: str, event: str, fields: dict[str, Any]
) -> None:
    codec = _fresh(kind)
    try:
        codec.parse(json.dumps({"event": event, **fields}))
    except CarrierProtocolError:
        pass


@settings(max_examples=400)
@given(
    st.sampled_from(["MEDIA_START", "MEDIA_MARK_PROCESSED", "DTMF_END", "STATUS", "ERROR", "Q"]),
    st.lists(st.text(st.characters(codec="ascii"), max_size=12), max_size=6),
)
def test_malformed_plain_events_parse_or_raise(event: str, words: list[str]) -> None:
    for codec in (AsteriskCodec(), started()):
        try:
            codec.parse(" ".join([event, *words]))
        except CarrierProtocolError:
            pass


VALID_JSON = [
    JSON_START,
    jev("MEDIA_MARK_PROCESSED", correlation_id="m1"),
    jev("DTMF_END", digit="7"),
    jev("MEDIA_XOFF"),
    jev("STATUS", queue_length=3, xon_level=800, xoff_level=900, queue_full=False),
    jev("ERROR", error_text="Unable to parse JSON command"),
]
VALID_PLAIN = [
    PLAIN_START,
    "MEDIA_MARK_PROCESSED m123",
    f"DTMF_END digit:7 channel_id:{CHAN_ID}",
    "MEDIA_XON",
    f"STATUS channel_id:{CHAN_ID} queue_length:3 xon_level:800",
    f"ERROR channel_id:{CHAN_ID} error_text:Unable to do that",
]


@settings(max_examples=400)
@given(st.sampled_from(VALID_JSON), st.integers(0, 400))
def test_truncated_json_frames_raise(frame: str, cut: int) -> None:
    cut = min(cut, len(frame) - 1)
    for codec in (AsteriskCodec(), started("json")):
        with pytest.raises(CarrierProtocolError):
            codec.parse(frame[:cut])
        with pytest.raises(CarrierProtocolError):
            codec.parse(frame[cut:] if cut else frame[1:])


@settings(max_examples=400)
@given(st.sampled_from(VALID_PLAIN), st.integers(0, 200))
def test_split_plain_frames_parse_or_raise(frame: str, cut: int) -> None:
    # A cut plain frame may still be a valid one ("MEDIA_MARK_PROCESSED m12" → "… m1"): the
    # property is that both halves parse or raise the protocol error, never anything else.
    for half in (frame[:cut], frame[cut:]):
        for codec in (AsteriskCodec(), started()):
            try:
                codec.parse(half)
            except CarrierProtocolError:
                pass


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(FORMATS)),
    st.integers(1, 4),
    st.sampled_from([10, 20, 30, 40]),
    st.lists(st.integers(0, 3000), max_size=8),
)
def test_outbound_media_is_always_whole_frames(
    fmt: str, frames: int, ptime: int, lengths: list[int]
) -> None:
    encoding, rate = FORMATS[fmt]
    sample = 2 if encoding == "pcm16" else 1
    size = rate // 1000 * sample * 10 * frames  # 10, 20, 30 or 40 ms frames
    codec = started(fmt=fmt, size=size, ptime=ptime)
    assert (codec.frame_ms * rate // 1000 * sample) % size == 0
    for n in lengths:
        payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        out = codec.media(payload)
        assert len(out) % size == 0
        assert out[:n] == payload
        assert len(out) - n < size
