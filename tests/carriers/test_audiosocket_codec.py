"""Asterisk AudioSocket: the TCP stream framer and the message codec, with property tests
(any split of a valid stream gives the same messages; any bytes parse or raise)."""

from __future__ import annotations

import itertools
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.audiosocket.codec import (
    KIND_AUDIO,
    KIND_DTMF,
    KIND_ERROR,
    KIND_HANGUP,
    KIND_UUID,
    AudioSocketCodec,
    AudioSocketReader,
    message,
)
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

CALL = uuid.UUID("0b7c1f3e-5a5d-4c8e-9a59-5b1d3c2e4f60")


def started(rate: int = 8000) -> AudioSocketCodec:
    codec = AudioSocketCodec(rate, {"agent": "demo"})
    codec.parse(message(KIND_UUID, CALL.bytes))
    return codec


def test_uuid_starts_the_call_with_the_listener_format() -> None:
    codec = AudioSocketCodec(8000, {"agent": "demo"})
    assert codec.parse(message(KIND_UUID, CALL.bytes)) == ev.CallStarted(
        call_sid=str(CALL),
        stream_sid=str(CALL),
        custom_parameters={"agent": "demo"},
        encoding="pcm16/8000",
        sample_rate=8000,
    )
    assert AudioSocketCodec(16000).format == "pcm16/16000"


def test_audio_dtmf_hangup_and_errors() -> None:
    codec = started()
    assert codec.parse(message(KIND_AUDIO, b"\x01\x00" * 160)) == ev.CallerAudio(b"\x01\x00" * 160)
    assert codec.parse(message(KIND_DTMF, b"7")) == ev.CallerDtmf("7")
    assert codec.parse(message(KIND_HANGUP)) == ev.CallerHangup("Asterisk hung up")
    assert codec.parse(message(KIND_ERROR, b"\x01")) == ev.CallerHangup(
        "Asterisk: the caller hung up"
    )
    with pytest.raises(CarrierProtocolError, match="frame forwarding error"):
        codec.parse(message(KIND_ERROR, b"\x02"))
    with pytest.raises(CarrierProtocolError, match="code 0x00"):
        codec.parse(message(KIND_ERROR))


def test_bad_messages_say_what_is_wrong() -> None:
    codec = started()
    with pytest.raises(CarrierProtocolError, match="16000 Hz but this listener speaks 8000"):
        codec.parse(message(0x12, b"\x00" * 640))
    with pytest.raises(CarrierProtocolError, match="unknown AudioSocket kind 0x42"):
        codec.parse(message(0x42, b"x"))
    with pytest.raises(CarrierProtocolError, match="odd"):
        codec.parse(message(KIND_AUDIO, b"\x00" * 3))
    with pytest.raises(CarrierProtocolError, match="says 4 bytes, carries 2"):
        codec.parse(b"\x10\x00\x04\x00\x00")
    with pytest.raises(CarrierProtocolError, match="not a keypad key"):
        codec.parse(message(KIND_DTMF, b"x"))
    with pytest.raises(CarrierProtocolError, match="second AudioSocket UUID"):
        codec.parse(message(KIND_UUID, CALL.bytes))
    with pytest.raises(CarrierProtocolError, match="before the UUID"):
        AudioSocketCodec().parse(message(KIND_AUDIO, b"\x00\x00"))
    with pytest.raises(CarrierProtocolError, match="must be 16"):
        AudioSocketCodec().parse(message(KIND_UUID, b"short"))
    with pytest.raises(CarrierProtocolError, match="binary"):
        codec.parse("text")
    with pytest.raises(CarrierProtocolError, match="not supported"):
        AudioSocketCodec(44100)


def test_outbound_audio_and_hangup() -> None:
    assert started().media(b"\x01\x02" * 160) == b"\x10\x01\x40" + b"\x01\x02" * 160
    assert started(16000).media(b"\x00" * 640)[:3] == b"\x12\x02\x80"
    assert started().hangup() == b"\x00\x00\x00"
    assert started().mark("m1") is None and started().clear() is None
    assert AudioSocketCodec.playback == "paced"


STREAM = (
    message(KIND_UUID, CALL.bytes)
    + message(KIND_AUDIO, bytes(range(256)) + bytes(64))
    + message(KIND_DTMF, b"#")
    + message(KIND_AUDIO, b"\x07\x00" * 160)
    + message(KIND_HANGUP)
)


@settings(max_examples=300)
@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_any_split_of_the_stream_gives_the_same_messages(cuts: list[int]) -> None:
    reader = AudioSocketReader()
    bounds = [0, *sorted(cuts), len(STREAM)]
    got: list[bytes] = []
    for a, b in itertools.pairwise(bounds):
        got += reader.feed(STREAM[a:b])
    assert b"".join(got) == STREAM and len(got) == 5 and reader.pending == 0
    codec = AudioSocketCodec()
    events = [codec.parse(m) for m in got]
    assert [type(e) for e in events] == [
        ev.CallStarted, ev.CallerAudio, ev.CallerDtmf, ev.CallerAudio, ev.CallerHangup,
    ]  # fmt: skip


@settings(max_examples=300)
@given(st.integers(1, len(STREAM) - 1))
def test_a_truncated_stream_leaves_the_tail_pending(cut: int) -> None:
    reader = AudioSocketReader()
    got = reader.feed(STREAM[:cut])
    assert len(b"".join(got)) + reader.pending == cut
    codec = AudioSocketCodec()
    for m in got:
        codec.parse(m)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_random_bytes_parse_or_raise(data: bytes) -> None:
    codec = started()
    for m in [data, *AudioSocketReader().feed(data)]:
        try:
            codec.parse(m)
        except CarrierProtocolError:
            pass
