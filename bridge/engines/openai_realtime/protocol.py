"""OpenAI Realtime API (GA), sans-I/O.

Server events in → session events out; engine actions in → client events out. GA names only
(``response.output_audio.delta``, ``session.type = "realtime"``, ``audio.input.format``); the
retired beta names are rejected as protocol errors so a misrouted endpoint is noticed at once.

With a μ-law carrier the session is configured with ``audio/pcmu`` both ways: the bytes the
caller sends are the bytes the model hears, with no resampling at all.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.engines.base import EngineCapabilities, JsonEngineProtocol
from bridge.errors import EngineProtocolError
from bridge.session import actions as act
from bridge.session import events as ev

CAPABILITIES = EngineCapabilities(
    server_vad=True,
    truncates=True,
    auto_interrupt=True,
    transcripts=True,
    audio_formats=("pcmu", "pcma", "pcm16/24000"),
)

WIRE_FORMATS: dict[str, dict[str, Any]] = {
    "pcmu": {"type": "audio/pcmu"},
    "pcma": {"type": "audio/pcma"},
    "pcm16/24000": {"type": "audio/pcm", "rate": 24000},
}

END_CALL_SCHEMA: dict[str, Any] = {
    "type": "function",
    "name": "end_call",
    "description": (
        "End the phone call. Call this only after you have said goodbye and the caller has "
        "nothing more to ask; your last sentence is played to the caller before the line closes."
    ),
    "parameters": {
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "Why the call ends."}},
    },
}

BETA_EVENTS = frozenset(
    {
        "response.audio.delta",
        "response.audio.done",
        "response.audio_transcript.delta",
        "response.audio_transcript.done",
        "response.text.delta",
        "response.text.done",
    }
)


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """What goes into ``session.update``."""

    model: str = "gpt-realtime"
    instructions: str = ""
    voice: str = "marin"
    audio_format: str = "pcmu"
    language: str | None = "en"
    transcription_model: str | None = "gpt-4o-mini-transcribe"
    tools: Sequence[Mapping[str, Any]] = ()
    """Function tools as ``{"name", "description", "parameters"}``."""
    end_call_tool: bool = True
    vad_threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    noise_reduction: str | None = "near_field"
    extra_session: Mapping[str, Any] = field(default_factory=dict)


class OpenAIRealtimeProtocol(JsonEngineProtocol):
    """One Realtime session's wire protocol."""

    capabilities = CAPABILITIES
    vendor = "Realtime"

    def __init__(self, config: RealtimeConfig) -> None:
        if config.audio_format not in WIRE_FORMATS:
            raise ValueError(f"audio format {config.audio_format!r} is not one OpenAI takes")
        self.config = config
        self.ready = False
        self.unknown_events = 0

    # -- outbound ----------------------------------------------------------------------------

    def session_config(self) -> dict[str, Any]:
        cfg = self.config
        fmt = WIRE_FORMATS[cfg.audio_format]
        audio_in: dict[str, Any] = {
            "format": fmt,
            "turn_detection": {
                "type": "server_vad",
                "threshold": cfg.vad_threshold,
                "prefix_padding_ms": cfg.prefix_padding_ms,
                "silence_duration_ms": cfg.silence_duration_ms,
                "create_response": True,
                "interrupt_response": True,
            },
            "noise_reduction": {"type": cfg.noise_reduction} if cfg.noise_reduction else None,
        }
        if cfg.transcription_model:
            transcription: dict[str, Any] = {"model": cfg.transcription_model}
            if cfg.language:
                transcription["language"] = cfg.language
            audio_in["transcription"] = transcription
        tools = [
            {
                "type": "function",
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters": t.get("parameters", {"type": "object", "properties": {}}),
            }
            for t in cfg.tools
        ]
        if cfg.end_call_tool:
            tools.append(END_CALL_SCHEMA)
        session: dict[str, Any] = {
            "type": "realtime",
            "model": cfg.model,
            "output_modalities": ["audio"],
            "instructions": cfg.instructions,
            "audio": {"input": audio_in, "output": {"format": fmt, "voice": cfg.voice}},
            "tools": tools,
            "tool_choice": "auto",
        }
        session.update(cfg.extra_session)
        return session

    def opening_messages(self) -> list[str]:
        return [_dump({"type": "session.update", "session": self.session_config()})]

    def audio_message(self, payload: bytes) -> str:
        """``input_audio_buffer.append`` for one chunk: the hot path, built without a serializer."""
        b64 = binascii.b2a_base64(payload, newline=False).decode("ascii")
        return '{"type":"input_audio_buffer.append","audio":"' + b64 + '"}'

    def encode(self, action: act.EngineAction) -> str:
        if isinstance(action, act.SendAudio):
            return self.audio_message(action.payload)
        if isinstance(action, act.TruncateAgent):
            return _dump(
                {
                    "type": "conversation.item.truncate",
                    "item_id": action.item_id,
                    "content_index": 0,
                    "audio_end_ms": max(0, int(action.audio_end_ms)),
                }
            )
        if isinstance(action, act.CancelResponse):
            message: dict[str, Any] = {"type": "response.cancel"}
            if action.response_id:
                message["response_id"] = action.response_id
            return _dump(message)
        if isinstance(action, act.AddUserText):
            content = [{"type": "input_text", "text": action.text}]
            item = {"type": "message", "role": "user", "content": content}
            return _dump({"type": "conversation.item.create", "item": item})
        if isinstance(action, act.AddSystemText):
            content = [{"type": "input_text", "text": action.text}]
            item = {"type": "message", "role": "system", "content": content}
            return _dump({"type": "conversation.item.create", "item": item})
        if isinstance(action, act.AddToolOutput):
            item = {"type": "function_call_output", "call_id": action.call_id}
            item["output"] = action.output
            return _dump({"type": "conversation.item.create", "item": item})
        if isinstance(action, act.CreateResponse):
            message = {"type": "response.create"}
            instructions = action.instructions
            if action.say is not None:
                instructions = "Say exactly this, word for word, and nothing else: " + json.dumps(
                    action.say
                )
            if instructions:
                message["response"] = {"instructions": instructions}
            return _dump(message)
        raise EngineProtocolError(f"cannot encode {type(action).__name__}", who="local")

    # -- inbound -----------------------------------------------------------------------------

    def dispatch(self, kind: str, m: dict[str, Any]) -> list[ev.EngineEvent]:
        if kind == "response.output_audio.delta":
            audio = binascii.a2b_base64(m["delta"], strict_mode=True)
            return [ev.AgentAudio(_s(m, "response_id"), _s(m, "item_id"), audio)]
        if kind == "response.output_audio.done":
            return [ev.AgentAudioDone(_s(m, "response_id"), _s(m, "item_id"))]
        if kind == "input_audio_buffer.speech_started":
            return [ev.SpeechStarted(m.get("item_id"), m.get("audio_start_ms"))]
        if kind == "input_audio_buffer.speech_stopped":
            return [ev.SpeechStopped(m.get("item_id"))]
        if kind == "response.created":
            return [ev.ResponseStarted(_s(m["response"], "id"))]
        if kind == "response.done":
            response = m["response"]
            details = response.get("status_details") or {}
            error = details.get("error") or details.get("reason")
            status = str(response.get("status", "completed"))
            return [ev.ResponseDone(_s(response, "id"), status, str(error) if error else None)]
        if kind in ("response.output_audio_transcript.done", "response.output_text.done"):
            text = m.get("transcript") if kind.endswith("transcript.done") else m.get("text")
            return [ev.AgentTranscript(_s(m, "response_id"), _s(m, "item_id"), str(text or ""))]
        if kind == "conversation.item.input_audio_transcription.completed":
            return [ev.UserTranscript(_s(m, "item_id"), str(m.get("transcript") or ""))]
        if kind == "conversation.item.input_audio_transcription.failed":
            error = m.get("error") or {}
            return [ev.EngineError(f"transcription failed: {error.get('message', error)}")]
        if kind == "response.function_call_arguments.done":
            return [ev.ToolCallRequested(_s(m, "call_id"), _s(m, "name"), _s(m, "arguments"))]
        if kind == "session.updated":
            if self.ready:
                return []
            self.ready = True
            return [ev.EngineReady()]
        if kind == "error":
            error = m.get("error") or {}
            return [ev.EngineError(str(error.get("message", "unknown error")), error.get("code"))]
        if kind in BETA_EVENTS:
            raise EngineProtocolError(f"beta event {kind!r} on a GA session")
        self.unknown_events += kind not in _KNOWN_IGNORED
        return []


_KNOWN_IGNORED = frozenset(
    {
        "session.created",
        "conversation.created",
        "conversation.item.created",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.truncated",
        "conversation.item.deleted",
        "conversation.item.retrieved",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_audio_transcript.delta",
        "response.output_text.delta",
        "response.function_call_arguments.delta",
        "rate_limits.updated",
    }
)


def _s(m: Mapping[str, Any], key: str) -> str:
    value = m[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value


def _dump(message: Mapping[str, Any]) -> str:
    return orjson.dumps(message).decode()
