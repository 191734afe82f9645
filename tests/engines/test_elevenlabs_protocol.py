"""ElevenLabs Agents protocol, sans-I/O: wire text in → session events out, and back."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.engines.elevenlabs.client import conversation_url, http_base
from bridge.engines.elevenlabs.protocol import ElevenLabsConfig, ElevenLabsProtocol
from bridge.errors import EngineProtocolError
from bridge.session import actions as act
from bridge.session import events as ev


def proto(**config: Any) -> ElevenLabsProtocol:
    return ElevenLabsProtocol(ElevenLabsConfig(**config))


def audio(event_id: int, data: bytes = b"\xff" * 160) -> str:
    b64 = base64.b64encode(data).decode()
    return json.dumps(
        {"type": "audio", "audio_event": {"audio_base_64": b64, "event_id": event_id}}
    )


def msg(kind: str, key: str, body: dict[str, Any]) -> str:
    return json.dumps({"type": kind, key: body})


def test_opening_message_sends_only_the_overrides_asked_for() -> None:
    p = proto(
        prompt="Be brief.",
        first_message="Hello!",
        language="en",
        voice_id="v1",
        temperature=0.3,
        dynamic_variables={"customer": "Ada"},
    )
    (opening,) = p.opening_messages()
    assert json.loads(opening) == {
        "type": "conversation_initiation_client_data",
        "conversation_config_override": {
            "agent": {"prompt": {"prompt": "Be brief."}, "first_message": "Hello!"}
        },
        "custom_llm_extra_body": {"temperature": 0.3},
        "dynamic_variables": {"customer": "Ada"},
    }
    everything = proto(
        prompt="P", first_message="F", language="de", voice_id="v1",
        overrides=("prompt", "first_message", "language", "voice"),
    )  # fmt: skip
    override = json.loads(everything.opening_messages()[0])["conversation_config_override"]
    assert override == {
        "agent": {"prompt": {"prompt": "P"}, "first_message": "F", "language": "de"},
        "tts": {"voice_id": "v1"},
    }
    assert json.loads(proto().opening_messages()[0]) == {
        "type": "conversation_initiation_client_data"
    }


def test_metadata_in_the_agreed_format_is_ready_otherwise_the_call_cannot_go_on() -> None:
    body = {
        "conversation_id": "conv_1",
        "agent_output_audio_format": "ulaw_8000",
        "user_input_audio_format": "ulaw_8000",
    }
    p = proto()
    assert p.receive(msg("conversation_initiation_metadata", "conversation_initiation_metadata_event", body)) == [ev.EngineReady("conv_1")]  # fmt: skip
    wrong = dict(body, agent_output_audio_format="pcm_44100")
    (closed,) = proto().receive(
        msg("conversation_initiation_metadata", "conversation_initiation_metadata_event", wrong)
    )
    assert isinstance(closed, ev.EngineClosed)
    assert "pcm_44100" in closed.reason and "ulaw_8000" in closed.reason
    pcm = proto(audio_format="pcm16/16000")
    ok = dict(body, agent_output_audio_format="pcm_16000", user_input_audio_format="pcm_16000")
    assert pcm.receive(msg("conversation_initiation_metadata", "conversation_initiation_metadata_event", ok)) == [ev.EngineReady("conv_1")]  # fmt: skip


def test_a_turn_is_one_response_whose_text_follows_its_first_audio() -> None:
    p = proto()
    out = p.receive(msg("agent_response", "agent_response_event", {"agent_response": "Hi there."}))
    assert out == [ev.ResponseStarted("el_resp_1")]
    out = p.receive(audio(1))
    assert out == [
        ev.AgentAudio("el_resp_1", "el_resp_1", b"\xff" * 160),
        ev.AgentTranscript("el_resp_1", "el_resp_1", "Hi there."),
    ]
    assert p.receive(audio(2)) == [ev.AgentAudio("el_resp_1", "el_resp_1", b"\xff" * 160)]
    out = p.receive(msg("user_transcript", "user_transcription_event", {"user_transcript": "ok"}))
    assert out == [
        ev.AgentAudioDone("el_resp_1", "el_resp_1"),
        ev.ResponseDone("el_resp_1", "completed"),
        ev.UserTranscript("user_2", "ok"),
    ]


def test_interruption_drops_stale_audio_and_the_correction_names_the_cut_item() -> None:
    p = proto()
    p.receive(msg("agent_response", "agent_response_event", {"agent_response": "One two three."}))
    p.receive(audio(2))
    out = p.receive(msg("interruption", "interruption_event", {"event_id": 3}))
    assert out[0] == ev.SpeechStarted()
    assert out[-1] == ev.ResponseDone("el_resp_1", "cancelled")
    assert p.receive(audio(3)) == []  # stale: id ≤ the interruption's
    assert p.stale_audio_dropped == 1
    fresh = p.receive(audio(4))
    assert fresh[0] == ev.ResponseStarted("el_resp_2")
    body = {"original_agent_response": "One two three.", "corrected_agent_response": "One..."}
    out = p.receive(msg("agent_response_correction", "agent_response_correction_event", body))
    assert out == [ev.AgentHeardText("el_resp_1", "One...")]


def test_tool_call_ends_the_turn_and_the_result_goes_back_as_a_string() -> None:
    p = proto()
    p.receive(audio(1))
    call = {"tool_name": "lookup", "tool_call_id": "t1", "parameters": {"order_id": "A1"}}
    out = p.receive(msg("client_tool_call", "client_tool_call", call))
    assert out[-1] == ev.ToolCallRequested("t1", "lookup", '{"order_id":"A1"}')
    assert isinstance(out[-2], ev.ResponseDone)
    sent = p.encode(act.AddToolOutput("t1", '{"status":"shipped"}', is_error=False))
    assert sent is not None
    assert json.loads(sent) == {
        "type": "client_tool_result",
        "tool_call_id": "t1",
        "result": '{"status":"shipped"}',
        "is_error": False,
    }


def test_ping_is_answered_with_its_event_id_and_unknown_types_reported_once() -> None:
    p = proto()
    assert p.receive(msg("ping", "ping_event", {"event_id": 7, "ping_ms": None})) == []
    assert p.take_outgoing() == ['{"type":"pong","event_id":7}']
    assert list(p.take_outgoing()) == []
    first = p.receive('{"type":"shiny_new_thing"}')
    assert len(first) == 1 and isinstance(first[0], ev.EngineError)
    assert p.receive('{"type":"shiny_new_thing"}') == []
    assert p.receive(msg("vad_score", "vad_score_event", {"vad_score": 0.9})) == []


def test_actions_elevenlabs_runs_itself_encode_to_nothing() -> None:
    p = proto()
    assert p.encode(act.CreateResponse("x")) is None
    assert p.encode(act.TruncateAgent("i", 100)) is None
    assert p.encode(act.CancelResponse()) is None
    assert json.loads(p.encode(act.AddUserText("hi")) or "") == {"type": "user_message", "text": "hi"}  # fmt: skip
    assert p.audio_message(b"\x00\xff") == '{"user_audio_chunk":"AP8="}'


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://api.elevenlabs.io", "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=a1"),
        ("http://127.0.0.1:9000", "ws://127.0.0.1:9000/v1/convai/conversation?agent_id=a1"),
        ("wss://api.eu.residency.elevenlabs.io/v1/convai/conversation", "wss://api.eu.residency.elevenlabs.io/v1/convai/conversation?agent_id=a1"),
    ],
)  # fmt: skip
def test_conversation_url(base: str, url: str) -> None:
    assert conversation_url(base, "a1") == url
    assert http_base(url).startswith("http")


@settings(max_examples=300)
@given(st.binary(max_size=60) | st.text(max_size=60))
def test_random_frames_parse_or_raise_the_protocol_error(frame: str | bytes) -> None:
    try:
        proto().receive(frame)
    except EngineProtocolError:
        pass


KINDS = ["audio", "interruption", "agent_response", "user_transcript", "client_tool_call", "ping",
         "agent_response_correction", "conversation_initiation_metadata"]  # fmt: skip


@settings(max_examples=300)
@given(
    st.sampled_from(KINDS),
    st.dictionaries(
        st.sampled_from(["audio_event", "interruption_event", "ping_event", "client_tool_call"]),
        st.dictionaries(
            st.text(max_size=12), st.none() | st.integers() | st.text(max_size=8), max_size=3
        ),
        max_size=2,
    ),
)
def test_malformed_known_messages_raise_the_protocol_error(
    kind: str, extra: dict[str, Any]
) -> None:
    try:
        proto().receive(json.dumps({"type": kind, **extra}))
    except EngineProtocolError:
        pass
