"""The simulator's Twilio codec: exact frame shapes out, strict parsing in."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import CarrierProtocolError
from bridge.simulate.wire import (
    BridgeClear,
    BridgeMark,
    BridgeMedia,
    StreamEncoder,
    new_sid,
    parse_bridge_message,
    twilio_signature,
)

MZ = "MZ" + "0" * 32


def j(**body: object) -> str:
    return json.dumps(body)


def encoder() -> StreamEncoder:
    return StreamEncoder(stream_sid=MZ, account_sid="AC" + "1" * 32, call_sid="CA" + "2" * 32)


def test_frames_have_twilios_exact_shapes() -> None:
    enc = encoder()
    assert json.loads(enc.connected()) == {
        "event": "connected",
        "protocol": "Call",
        "version": "1.0.0",
    }
    assert json.loads(enc.start({"agent": "sales"})) == {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC" + "1" * 32,
            "streamSid": MZ,
            "callSid": "CA" + "2" * 32,
            "tracks": ["inbound"],
            "customParameters": {"agent": "sales"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": MZ,
    }
    first, second = json.loads(enc.media(b"\xff" * 160)), json.loads(enc.media(b"\x00" * 160))
    assert first == {
        "event": "media",
        "sequenceNumber": "2",
        "media": {
            "track": "inbound",
            "chunk": "1",
            "timestamp": "0",
            "payload": base64.b64encode(b"\xff" * 160).decode(),
        },
        "streamSid": MZ,
    }
    assert len(first["media"]["payload"]) == 216
    assert (second["sequenceNumber"], second["media"]["chunk"]) == ("3", "2")
    assert second["media"]["timestamp"] == "20"
    assert json.loads(enc.dtmf("#")) == {
        "event": "dtmf",
        "sequenceNumber": "4",
        "dtmf": {"track": "inbound_track", "digit": "#"},
        "streamSid": MZ,
    }
    assert json.loads(enc.mark("resp_1:12")) == {
        "event": "mark",
        "sequenceNumber": "5",
        "mark": {"name": "resp_1:12"},
        "streamSid": MZ,
    }
    assert json.loads(enc.stop()) == {
        "event": "stop",
        "sequenceNumber": "6",
        "stop": {"accountSid": "AC" + "1" * 32, "callSid": "CA" + "2" * 32},
        "streamSid": MZ,
    }
    with pytest.raises(ValueError, match="DTMF"):
        enc.dtmf("x")


def test_sids_and_signature() -> None:
    sid = new_sid("CA")
    assert re.fullmatch(r"CA[0-9a-f]{32}", sid)
    assert new_sid("CA") != sid
    # HMAC-SHA1 over the URL alone, base64: checked against the twilio package's validator.
    from twilio.request_validator import RequestValidator

    url = "wss://bridge.example.com/twilio/media"
    assert RequestValidator("secret").validate(url, {}, twilio_signature(url, "secret"))


def test_parses_what_a_bridge_may_send() -> None:
    payload = base64.b64encode(b"\x7f" * 320).decode()
    media = {"event": "media", "streamSid": MZ, "media": {"payload": payload}}
    assert parse_bridge_message(json.dumps(media), MZ) == BridgeMedia(b"\x7f" * 320)
    mark = {"event": "mark", "streamSid": MZ, "mark": {"name": "r1"}}
    assert parse_bridge_message(json.dumps(mark), MZ) == BridgeMark("r1")
    assert parse_bridge_message(json.dumps({"event": "clear", "streamSid": MZ}), MZ) == (
        BridgeClear()
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\x00\x01", "binary frame"),
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (j(event="sendDigits", streamSid=MZ), "unknown event 'sendDigits'"),
        (j(event="clear"), "clear without streamSid"),
        (j(event="clear", streamSid="MZother"), "wrong streamSid 'MZother'"),
        (j(event="mark", streamSid=MZ), "without a 'mark' object"),
        (j(event="mark", streamSid=MZ, mark={"name": 3}), "string name"),
        (j(event="media", streamSid=MZ, media={}), "string payload"),
        (j(event="media", streamSid=MZ, media={"payload": "@@"}), "base64"),
        (j(event="media", streamSid=MZ, media={"payload": "é"}), "base64"),
        (
            json.dumps(
                {
                    "event": "media",
                    "streamSid": MZ,
                    "media": {"payload": base64.b64encode(b"RIFF\x24\x00\x00\x00WAVE").decode()},
                }
            ),
            "WAV file",
        ),
    ],
)
def test_rejects_what_twilio_would_not_play(raw: str | bytes, problem: str) -> None:
    with pytest.raises(CarrierProtocolError, match=re.escape(problem)) as info:
        parse_bridge_message(raw, MZ)
    assert info.value.who == "remote"


@given(st.one_of(st.text(), st.binary(), st.from_regex(r'\{"event": ?"(media|mark|clear)".*')))
def test_property_parser_fails_one_way(raw: str | bytes) -> None:
    try:
        parse_bridge_message(raw, MZ)
    except CarrierProtocolError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.just("RIFF"),
    lambda inner: st.lists(inner) | st.dictionaries(st.sampled_from(["name", "payload"]), inner),
    max_leaves=8,
)


@given(json_values)
def test_property_parser_fails_one_way_on_json_bodies(body: object) -> None:
    for event in ("media", "mark", "clear"):
        raw = json.dumps({"event": event, "streamSid": MZ, event: body})
        try:
            parse_bridge_message(raw, MZ)
        except CarrierProtocolError:
            pass
