"""OpenAI Realtime GA protocol: what we send validates against the SDK's own types; what we
receive maps to session events; anything else fails as EngineProtocolError."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.engines.openai_realtime.client import session_url
from bridge.engines.openai_realtime.protocol import OpenAIRealtimeProtocol, RealtimeConfig
from bridge.errors import EngineProtocolError
from bridge.session import actions as act
from bridge.session import events as ev
from tests.fakes.openai_validate import SERVER_EVENTS, validate_client_event, validate_server_event

SERVER_TYPES = sorted(SERVER_EVENTS)


def validate_client(text: str) -> Any:
    """Strict: the SDK's model for the type, and no unknown key at any depth."""
    return validate_client_event(json.loads(text))


def protocol(**kw: Any) -> OpenAIRealtimeProtocol:
    tools = [
        {
            "name": "lookup_order",
            "description": "Find an order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        }
    ]
    return OpenAIRealtimeProtocol(RealtimeConfig(instructions="Be brief.", tools=tools, **kw))


def test_session_update_is_ga_and_pcmu_both_ways() -> None:
    (text,) = protocol().opening_messages()
    model = validate_client(text)
    session = json.loads(text)["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["input"]["turn_detection"]["interrupt_response"] is True
    assert [t["name"] for t in session["tools"]] == ["lookup_order", "end_call"]
    assert model.session.audio.input.transcription.model == "gpt-4o-mini-transcribe"


def test_pcm24k_session_for_carriers_that_are_not_mulaw() -> None:
    (text,) = protocol(audio_format="pcm16/24000").opening_messages()
    validate_client(text)
    assert json.loads(text)["session"]["audio"]["output"]["format"] == {
        "type": "audio/pcm",
        "rate": 24000,
    }


@pytest.mark.parametrize(
    "action",
    [
        act.SendAudio(b"\xff" * 160),
        act.TruncateAgent("item_1", 460),
        act.CancelResponse("resp_1"),
        act.CancelResponse(None),
        act.AddUserText("The caller pressed these keys on the phone keypad: 42"),
        act.AddToolOutput("call_1", '{"status":"shipped"}'),
        act.CreateResponse(None),
        act.CreateResponse('Say exactly: "Hello."'),
    ],
)
def test_every_action_encodes_to_a_valid_ga_client_event(action: act.EngineAction) -> None:
    validate_client(protocol().encode(action))


def test_audio_append_is_built_without_a_serializer_but_is_exact() -> None:
    text = protocol().audio_message(b"\x00\xff")
    assert json.loads(text) == {"type": "input_audio_buffer.append", "audio": "AP8="}


def server(kind: str, **fields: Any) -> str:
    data = {"type": kind, "event_id": "evt_1", **fields}
    validate_server_event(data)  # our vectors are valid GA events
    return json.dumps(data)


IDS = {"response_id": "resp_1", "item_id": "item_1", "output_index": 0, "content_index": 0}


def test_server_events_map_to_session_events() -> None:
    p = protocol()
    delta = base64.b64encode(b"\x01\x02").decode()
    assert p.receive(server("response.output_audio.delta", delta=delta, **IDS)) == [
        ev.AgentAudio("resp_1", "item_1", b"\x01\x02")
    ]
    assert p.receive(server("response.output_audio.done", **IDS)) == [
        ev.AgentAudioDone("resp_1", "item_1")
    ]
    started = server("input_audio_buffer.speech_started", audio_start_ms=1200, item_id="u1")
    assert p.receive(started) == [ev.SpeechStarted("u1", 1200)]
    transcript = server("response.output_audio_transcript.done", transcript="Hi there", **IDS)
    assert p.receive(transcript) == [ev.AgentTranscript("resp_1", "item_1", "Hi there")]
    user = server(
        "conversation.item.input_audio_transcription.completed",
        item_id="u1",
        content_index=0,
        transcript="hello",
        usage={"type": "duration", "seconds": 1.0},
    )
    assert p.receive(user) == [ev.UserTranscript("u1", "hello")]
    call = server(
        "response.function_call_arguments.done",
        response_id="resp_1",
        item_id="item_2",
        output_index=1,
        call_id="call_1",
        name="lookup_order",
        arguments='{"order_id":"7"}',
    )
    assert p.receive(call) == [ev.ToolCallRequested("call_1", "lookup_order", '{"order_id":"7"}')]
    response = {"id": "resp_1", "object": "realtime.response", "status": "cancelled"}
    assert p.receive(server("response.created", response=response | {"status": "in_progress"})) == [
        ev.ResponseStarted("resp_1")
    ]
    assert p.receive(server("response.done", response=response)) == [
        ev.ResponseDone("resp_1", "cancelled")
    ]
    error = {"type": "invalid_request_error", "code": "invalid_value", "message": "bad"}
    assert p.receive(server("error", error=error)) == [ev.EngineError("bad", "invalid_value")]


def test_session_updated_makes_the_engine_ready_once() -> None:
    p = protocol()
    updated = json.dumps({"type": "session.updated", "event_id": "e", "session": {}})
    assert p.receive(updated) == [ev.EngineReady()]
    assert p.receive(updated) == []


def test_beta_events_and_garbage_are_protocol_errors() -> None:
    p = protocol()
    for frame in (
        '{"type":"response.audio.delta","delta":"AA=="}',
        "not json",
        '{"no":"type"}',
        '{"type":"response.output_audio.delta","delta":"***"}',
        '{"type":"response.output_audio.delta","delta":"AA==","response_id":1,"item_id":"x"}',
    ):
        with pytest.raises(EngineProtocolError):
            p.receive(frame)


def test_unknown_future_events_are_ignored_and_counted() -> None:
    p = protocol()
    assert p.receive('{"type":"response.brand_new_thing"}') == []
    assert p.unknown_events == 1
    assert p.receive('{"type":"rate_limits.updated","rate_limits":[]}') == []
    assert p.unknown_events == 1


def test_url_gets_the_model() -> None:
    assert session_url("wss://api.openai.com/v1/realtime", "gpt-realtime") == (
        "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    )
    assert session_url("ws://h/v1/realtime?model=x", "y") == "ws://h/v1/realtime?model=x"


server_types = st.sampled_from([*SERVER_TYPES, "response.audio.delta", "x"])
fields = st.dictionaries(
    st.sampled_from(
        [
            "delta",
            "response_id",
            "item_id",
            "response",
            "transcript",
            "error",
            "call_id",
            "name",
            "arguments",
            "status",
            "id",
        ]
    ),
    st.none()
    | st.integers()
    | st.text(max_size=6)
    | st.dictionaries(st.text(max_size=4), st.text(max_size=4)),
)


@settings(max_examples=400)
@given(server_types, fields)
def test_receive_returns_events_or_raises_its_protocol_error(
    kind: str, extra: dict[str, Any]
) -> None:
    try:
        protocol().receive(json.dumps({"type": kind, **extra}))
    except EngineProtocolError:
        pass


@settings(max_examples=200)
@given(st.binary(max_size=40) | st.text(max_size=40))
def test_receive_random_frames(frame: str | bytes) -> None:
    try:
        protocol().receive(frame)
    except EngineProtocolError:
        pass
