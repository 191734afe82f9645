"""ElevenLabs Agents (ConvAI websocket), sans-I/O: wire text in → session events out.

ElevenLabs runs the whole conversation: its VAD, its turn-taking, its first message, its
answers after tool results. So the engine *speaks its initial message itself*, *responds on its
own* and *cannot truncate*; barge-in is its ``interruption`` event, after which every ``audio``
whose ``event_id`` is not above the interruption's is stale and dropped here, and the words the
caller heard arrive as ``agent_response_correction``.

ElevenLabs has no response ids; this protocol makes them. An agent *response* starts with the
first ``agent_response`` or fresh ``audio`` after a boundary and ends at the next boundary: a
user transcript, an interruption, a client tool call. Each response is one item.

Audio is passed through untouched: ``ulaw_8000`` both ways for μ-law carriers.
"""

from __future__ import annotations

import binascii
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.engines.base import JsonEngineProtocol
from bridge.session import actions as act
from bridge.session import events as ev
from bridge.session.config import EngineCapabilities

__all__ = ["CAPABILITIES", "FORMATS", "ElevenLabsConfig", "ElevenLabsProtocol"]

FORMATS: dict[str, str] = {
    "pcmu": "ulaw_8000",
    "pcm16/8000": "pcm_8000",
    "pcm16/16000": "pcm_16000",
    "pcm16/24000": "pcm_24000",
}
"""callbridge audio format → ElevenLabs format name."""

CAPABILITIES = EngineCapabilities(
    server_vad=True,
    truncates=False,
    auto_interrupt=True,
    transcripts=True,
    audio_formats=tuple(FORMATS),
    speaks_initial_message=True,
    auto_response=True,
    heard_text=True,
    says_text=False,  # a conversation has no "say this" message
)

OVERRIDES = ("prompt", "first_message", "language", "voice")
"""Overrides callbridge can send; each must be enabled in the ElevenLabs agent's security
settings, or ElevenLabs closes the conversation with 1008."""

_IGNORED = frozenset(
    {
        "internal_tentative_agent_response",
        "vad_score",
        "agent_tool_response",
        "agent_chat_response_part",
        "tentative_user_transcript",
        "internal_turn_probability",
        "contextual_update",
        "agent_response_metadata",
    }
)
"""Server messages that carry nothing the call needs."""


@dataclass(frozen=True, slots=True)
class ElevenLabsConfig:
    audio_format: str = "pcmu"
    prompt: str | None = None
    first_message: str | None = None
    language: str | None = None
    voice_id: str | None = None
    overrides: tuple[str, ...] = ("prompt", "first_message")
    temperature: float | None = None
    dynamic_variables: Mapping[str, str | int | float | bool] = field(default_factory=dict)


class ElevenLabsProtocol(JsonEngineProtocol):
    capabilities = CAPABILITIES
    vendor = "ElevenLabs"

    def __init__(self, config: ElevenLabsConfig) -> None:
        if config.audio_format not in FORMATS:
            raise ValueError(f"ElevenLabs cannot take audio format {config.audio_format!r}")
        self.config = config
        self.conversation_id: str | None = None
        self.wire_format = FORMATS[config.audio_format]
        self._outgoing: list[str] = []
        self._ids = itertools.count(1)
        self._response: str | None = None
        self._interrupted: str | None = None
        self._last_interrupt_id = 0
        self._text: str | None = None
        self._text_sent = False
        self._unknown: set[str] = set()
        self.stale_audio_dropped = 0

    # -- outbound ----------------------------------------------------------------------------

    def opening_messages(self) -> list[str]:
        c = self.config
        agent: dict[str, Any] = {}
        if "prompt" in c.overrides and c.prompt:
            agent["prompt"] = {"prompt": c.prompt}
        if "first_message" in c.overrides and c.first_message:
            agent["first_message"] = c.first_message
        if "language" in c.overrides and c.language:
            agent["language"] = c.language
        override: dict[str, Any] = {}
        if agent:
            override["agent"] = agent
        if "voice" in c.overrides and c.voice_id:
            override["tts"] = {"voice_id": c.voice_id}
        message: dict[str, Any] = {"type": "conversation_initiation_client_data"}
        if override:
            message["conversation_config_override"] = override
        if c.temperature is not None:
            message["custom_llm_extra_body"] = {"temperature": c.temperature}
        if c.dynamic_variables:
            message["dynamic_variables"] = dict(c.dynamic_variables)
        return [_dump(message)]

    def audio_message(self, payload: bytes) -> str:
        b64 = binascii.b2a_base64(payload, newline=False).decode("ascii")
        return '{"user_audio_chunk":"' + b64 + '"}'

    def encode(self, action: act.EngineAction) -> str | None:
        if isinstance(action, act.SendAudio):
            return self.audio_message(action.payload)
        if isinstance(action, act.AddToolOutput):
            return _dump(
                {
                    "type": "client_tool_result",
                    "tool_call_id": action.call_id,
                    "result": action.output,
                    "is_error": action.is_error,
                }
            )
        if isinstance(action, act.AddUserText):
            return _dump({"type": "user_message", "text": action.text})
        if isinstance(action, act.AddSystemText):
            return _dump({"type": "contextual_update", "text": action.text})
        # TruncateAgent, CancelResponse, CreateResponse: ElevenLabs does these itself.
        return None

    def take_outgoing(self) -> Sequence[str]:
        if not self._outgoing:
            return ()
        out, self._outgoing = self._outgoing, []
        return out

    # -- inbound -----------------------------------------------------------------------------

    def dispatch(self, kind: str, m: dict[str, Any]) -> list[ev.EngineEvent]:
        if kind == "audio":
            body = m["audio_event"]
            event_id = int(body["event_id"])
            if event_id <= self._last_interrupt_id:
                self.stale_audio_dropped += 1
                return []
            audio = binascii.a2b_base64(_text(body, "audio_base_64"), strict_mode=True)
            out = self._start_response()
            response = self._response
            assert response is not None
            out.append(ev.AgentAudio(response, response, audio))
            if self._text is not None and not self._text_sent:
                self._text_sent = True
                out.append(ev.AgentTranscript(response, response, self._text))
            return out
        if kind == "agent_response":
            # Sent with the first audio of a turn; handed on after that audio, so the core
            # knows the item by its audio first (a text-only item is journaled at once).
            text = _text(m["agent_response_event"], "agent_response")
            out = self._end_response("completed") if self._text is not None else []
            out += self._start_response()
            self._text = text
            return out
        if kind == "interruption":
            self._last_interrupt_id = int(m["interruption_event"]["event_id"])
            interrupted = self._response
            out = [ev.SpeechStarted()]
            out += self._end_response("cancelled")
            self._interrupted = interrupted
            return out
        if kind == "agent_response_correction":
            body = m["agent_response_correction_event"]
            corrected = _text(body, "corrected_agent_response")
            if self._interrupted is None:
                return []
            return [ev.AgentHeardText(self._interrupted, corrected)]
        if kind == "user_transcript":
            text = _text(m["user_transcription_event"], "user_transcript")
            out = self._end_response("completed")
            return [*out, ev.UserTranscript(f"user_{next(self._ids)}", text)]
        if kind == "client_tool_call":
            call = m["client_tool_call"]
            parameters = call.get("parameters") or {}
            if not isinstance(parameters, dict):
                raise TypeError("parameters must be an object")
            out = self._end_response("completed")
            arguments = orjson.dumps(parameters).decode()
            call_id, name = _text(call, "tool_call_id"), _text(call, "tool_name")
            return [*out, ev.ToolCallRequested(call_id, name, arguments)]
        if kind == "ping":
            event_id = int(m["ping_event"]["event_id"])
            self._outgoing.append('{"type":"pong","event_id":' + str(event_id) + "}")
            return []
        if kind == "conversation_initiation_metadata":
            return self._on_metadata(m["conversation_initiation_metadata_event"])
        if kind in _IGNORED or kind.startswith("mcp_"):
            return []
        if kind in self._unknown:
            return []
        self._unknown.add(kind)  # report each unknown type once, then ignore it
        return [ev.EngineError(f"unknown ElevenLabs message type {kind!r} ignored", "unknown_type")]

    def _on_metadata(self, body: Mapping[str, Any]) -> list[ev.EngineEvent]:
        self.conversation_id = body.get("conversation_id")
        out_format = body.get("agent_output_audio_format")
        in_format = body.get("user_input_audio_format")
        for side, got in (("output", out_format), ("input", in_format)):
            if got is not None and got != self.wire_format:
                return [
                    ev.EngineClosed(
                        f"ElevenLabs agent {side} audio is {got}, callbridge needs "
                        f"{self.wire_format}: set the agent's {side} format in ElevenLabs"
                    )
                ]
        return [ev.EngineReady(self.conversation_id)]

    # -- responses ---------------------------------------------------------------------------

    def _start_response(self) -> list[ev.EngineEvent]:
        if self._response is not None:
            return []
        self._response = f"el_resp_{next(self._ids)}"
        self._text = None
        self._text_sent = False
        return [ev.ResponseStarted(self._response)]

    def _end_response(self, status: str) -> list[ev.EngineEvent]:
        response = self._response
        if response is None:
            return []
        self._response = None
        out: list[ev.EngineEvent] = []
        if self._text is not None and not self._text_sent:  # a turn without audio
            out.append(ev.AgentTranscript(response, response, self._text))
        self._text = None
        out += [ev.AgentAudioDone(response, response), ev.ResponseDone(response, status)]
        return out


def _text(m: Mapping[str, Any], key: str) -> str:
    value = m[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value


def _dump(message: Mapping[str, Any]) -> str:
    return orjson.dumps(message).decode()
