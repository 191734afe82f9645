"""Telnyx media streaming codec: every message, chunk reordering and concealment, and
property tests (parse or raise the protocol error; no audio lost or duplicated)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.telnyx.codec import REORDER_WINDOW, TelnyxCodec
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

STREAM = "32de0dea-53cb-4b21-89a4-9e1819c043bc"


def start(encoding: str = "PCMU", **extra: Any) -> str:
    body = {
        "user_id": "u1",
        "call_control_id": "v3:abc",
        "call_session_id": "s1",
        "from": "+15550000001",
        "to": "+15550000002",
        "media_format": {"encoding": encoding, "sample_rate": 8000, "channels": 1},
        **extra,
    }
    return json.dumps(
        {"event": "start", "sequence_number": "1", "start": body, "stream_id": STREAM}
    )


def media(chunk: int | None, payload: bytes, track: str = "inbound") -> str:
    body: dict[str, Any] = {
        "track": track,
        "timestamp": "5",
        "payload": base64.b64encode(payload).decode(),
    }
    if chunk is not None:
        body["chunk"] = str(chunk)
    return json.dumps(
        {"event": "media", "sequence_number": "4", "media": body, "stream_id": STREAM}
    )


def started(**extra: Any) -> TelnyxCodec:
    codec = TelnyxCodec()
    codec.parse(start(**extra))
    return codec


def test_start_gives_the_call_and_its_parameters() -> None:
    codec = TelnyxCodec()
    assert codec.parse('{"event":"connected","version":"1.0.0"}') is None
    state = base64.b64encode(json.dumps({"agent": "support", "customer_name": "Ada"}).encode())
    event = codec.parse(start(client_state=state.decode()))
    assert event == ev.CallStarted(
        call_sid="v3:abc",
        stream_sid=STREAM,
        custom_parameters={
            "agent": "support",
            "customer_name": "Ada",
            "from": "+15550000001",
            "to": "+15550000002",
            "call_session_id": "s1",
        },
        encoding="pcmu",
        sample_rate=8000,
    )
    assert started(encoding="PCMA").encoding == "pcma"
    plain = started(client_state=base64.b64encode(b"vip").decode())
    assert plain.started


def test_unsupported_codecs_are_refused_with_the_fix() -> None:
    with pytest.raises(CarrierProtocolError, match="stream_bidirectional_codec"):
        TelnyxCodec().parse(start(encoding="OPUS"))


def test_media_in_order_out_of_order_and_missing() -> None:
    codec = started()
    a, b, c, d, e, f = (bytes([n]) * 160 for n in range(1, 7))
    assert codec.parse(media(1, a)) == ev.CallerAudio(a)
    assert codec.parse(media(3, c)) is None  # 2 is late: wait for it
    assert codec.parse(media(2, b)) == ev.CallerAudio(b + c)
    assert codec.parse(media(5, e)) is None  # 4 missing
    assert codec.parse(media(6, f)) is None
    out = codec.parse(media(7, a))  # 3 chunks after the gap: conceal 4 with silence
    assert out == ev.CallerAudio(b"\xff" * 160 + e + f + a)
    assert codec.concealed_chunks == 1
    assert codec.parse(media(4, d)) is None  # too late now
    assert codec.late_chunks == 1
    assert codec.parse(media(None, d)) == ev.CallerAudio(d)
    assert codec.parse(media(8, a, track="outbound")) is None


def test_other_events() -> None:
    codec = started()
    assert codec.parse(
        json.dumps({"event": "dtmf", "stream_id": STREAM, "dtmf": {"digit": "5"}})
    ) == ev.CallerDtmf("5")
    assert codec.parse(
        json.dumps({"event": "mark", "stream_id": STREAM, "mark": {"name": "m1"}})
    ) == ev.PlaybackMark("m1")
    with pytest.raises(CarrierProtocolError, match="100003"):
        codec.parse(
            json.dumps(
                {
                    "event": "error",
                    "stream_id": STREAM,
                    "payload": {"code": 100003, "title": "malformed", "detail": "bad base64"},
                }
            )
        )
    assert isinstance(
        codec.parse(json.dumps({"event": "stop", "stop": {}, "stream_id": STREAM})), ev.CallerHangup
    )
    with pytest.raises(CarrierProtocolError, match="before start"):
        TelnyxCodec().parse(media(1, b"\xff"))
    with pytest.raises(CarrierProtocolError, match="unknown event"):
        codec.parse('{"event":"surprise"}')


def test_outbound_messages() -> None:
    codec = started()
    assert json.loads(codec.media(b"\x00\xff")) == {"event": "media", "media": {"payload": "AP8="}}
    assert json.loads(codec.mark("m7")) == {"event": "mark", "mark": {"name": "m7"}}
    assert json.loads(codec.clear()) == {"event": "clear"}


@settings(max_examples=300)
@given(st.binary(max_size=80) | st.text(max_size=80))
def test_random_frames_parse_or_raise(frame: str | bytes) -> None:
    codec = started()
    try:
        codec.parse(frame)
    except CarrierProtocolError:
        pass


@settings(max_examples=300)
@given(
    st.sampled_from(["start", "media", "mark", "dtmf", "stop", "error", "connected"]),
    st.dictionaries(st.sampled_from(["start", "media", "mark", "dtmf", "payload", "stream_id"]),
                    st.none() | st.integers() | st.text(max_size=6) | st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=3), max_size=3),
)  # fmt: skip
def test_malformed_known_events_parse_or_raise(kind: str, extra: dict[str, Any]) -> None:
    codec = started()
    try:
        codec.parse(json.dumps({"event": kind, **extra}))
    except CarrierProtocolError:
        pass


@settings(max_examples=500)
@given(st.permutations(list(range(1, 25))), st.sets(st.integers(1, 24), max_size=4))
def test_reordering_loses_and_duplicates_nothing(order: list[int], dropped: set[int]) -> None:
    codec = started()
    out = bytearray()
    first = next((c for c in order if c not in dropped), 1)  # where the codec starts counting
    for chunk in order:
        if chunk in dropped:
            continue
        event = codec.parse(media(chunk, bytes([chunk]) * 160))
        if event is not None:
            out += event.payload  # type: ignore[union-attr]
    assert len(out) % 160 == 0
    got = [out[i] for i in range(0, len(out), 160)]
    real = [g for g in got if g != 0xFF]
    assert len(real) == len(set(real))  # nothing twice
    assert all(first <= g <= 24 for g in real)
    # every chunk is delivered, concealed, late, or still waiting within the window
    delivered = len(got) + codec.late_chunks
    assert (
        delivered + len(codec._pending) + len(dropped & set(order))
        >= 24 - first + 1 - REORDER_WINDOW
    )


VALID_FRAMES = [
    '{"event":"connected","version":"1.0.0"}',
    media(7, b"\x01" * 160),
    json.dumps({"event": "mark", "stream_id": STREAM, "mark": {"name": "m1"}}),
    json.dumps({"event": "dtmf", "stream_id": STREAM, "dtmf": {"digit": "5"}}),
    json.dumps({"event": "stop", "stream_id": STREAM, "stop": {"call_control_id": "v3:abc"}}),
]


@settings(max_examples=300)
@given(st.sampled_from(VALID_FRAMES), st.data())
def test_split_and_truncated_frames_raise_the_protocol_error(frame: str, data: Any) -> None:
    cut = data.draw(st.integers(1, len(frame) - 1))
    codec = started()
    for piece in (frame[:cut], frame[cut:]):  # a frame split in two is two bad frames
        try:
            codec.parse(piece)
        except CarrierProtocolError:
            pass
    assert codec.parse(frame) is not None or frame.startswith('{"event":"connected"')
