"""Every ElevenLabs Agents (ConvAI) websocket message, as strict pydantic models.

Written by hand from ElevenLabs' AsyncAPI document (``fern/apis/convai/asyncapi.yml``,
elevenlabs-docs, Aug 2025; digest in ``protocols.md`` §3) — the official SDK has no models for
this protocol, it handles raw dicts. Strict means:

* unknown keys are rejected at every depth (``extra="forbid"``);
* no coercion (``strict=True``): ``"event_id": "7"`` or ``"result": {...}`` is an error, a JSON
  integer where the spec says ``number`` is fine;
* the message class is picked by its ``type`` literal; ``{"user_audio_chunk": …}`` is the one
  message without a ``type``.

Deliberate departures from the spec, each for a reason:

* ``custom_llm_extra_body`` accepts keys beyond ``temperature``/``max_tokens``: it exists to
  forward arbitrary request fields to a custom LLM (the declared two are still type-checked).
* Server → client payloads make required what the SDK reads unconditionally (``event_id``,
  ``audio_base_64``, ``conversation_id`` …): these models check the *fake's* output, so being
  stricter than the spec only catches bugs in the fake. ``ping_ms`` may be ``null`` (no
  round trip measured yet), which the SDK handles.
* ``alignment`` on ``audio`` events is from the docs, not the AsyncAPI.

Not in the 2025 AsyncAPI, hence rejected as unknown types: the SDK's ``feedback`` and
``multimodal_message``, and its ``conversation_config_override.text_only`` (set when a
conversation has no audio interface).

Errors never escape as pydantic's: :class:`MessageInvalid` carries ``code``, ``message`` and the
dotted ``path`` of the offending field.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AUDIO_FORMATS",
    "CLIENT_MESSAGES",
    "SERVER_MESSAGES",
    "AgentResponse",
    "AgentResponseCorrection",
    "AudioFormatName",
    "AudioResponse",
    "ClientMessage",
    "ClientToolCall",
    "ClientToolResult",
    "ContextualUpdate",
    "ConversationConfigOverride",
    "ConversationInitiationClientData",
    "ConversationInitiationMetadata",
    "InternalTentativeAgentResponse",
    "Interruption",
    "MessageInvalid",
    "Ping",
    "Pong",
    "ServerMessage",
    "UserActivity",
    "UserAudioChunk",
    "UserMessage",
    "UserTranscript",
    "VadScore",
    "parse_client_message",
    "validate_server_message",
]

AudioFormatName = Literal[
    "ulaw_8000", "pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100", "pcm_48000"
]
AUDIO_FORMATS: tuple[str, ...] = typing.get_args(AudioFormatName)
"""Formats an agent can be configured with (``elevenlabs.types.TtsOutputFormat``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --------------------------------------------------------------------------- client → server


class PromptOverride(_Strict):
    prompt: str | None = None


class AgentOverride(_Strict):
    prompt: PromptOverride | None = None
    first_message: str | None = None
    language: str | None = None


class TtsOverride(_Strict):
    voice_id: str | None = None


class ConversationConfigOverride(_Strict):
    agent: AgentOverride | None = None
    tts: TtsOverride | None = None


class CustomLlmExtraBody(BaseModel):
    """Declared keys are checked; others pass through to the custom LLM (see module doc)."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    temperature: float | None = None
    max_tokens: int | None = None


class SourceInfo(_Strict):
    """Added by the SDKs (``{"source": "python_sdk", "version": "2.78.0"}``)."""

    source: str | None = None
    version: str | None = None


DynamicValue = str | bool | int | float


class ConversationInitiationClientData(_Strict):
    type: Literal["conversation_initiation_client_data"]
    conversation_config_override: ConversationConfigOverride | None = None
    custom_llm_extra_body: CustomLlmExtraBody | None = None
    dynamic_variables: dict[str, DynamicValue] | None = None
    source_info: SourceInfo | None = None
    user_id: str | None = None


class UserAudioChunk(_Strict):
    """Base64 audio in the conversation's ``user_input_audio_format``; no ``type`` key."""

    user_audio_chunk: str


class Pong(_Strict):
    type: Literal["pong"]
    event_id: int | None = None


class ClientToolResult(_Strict):
    type: Literal["client_tool_result"]
    tool_call_id: str | None = None
    result: str | None = None
    is_error: bool | None = None


class ContextualUpdate(_Strict):
    """Client → server (background information); the server may echo it."""

    type: Literal["contextual_update"]
    text: str


class UserMessage(_Strict):
    type: Literal["user_message"]
    text: str | None = None


class UserActivity(_Strict):
    type: Literal["user_activity"]


ClientMessage = (
    ConversationInitiationClientData
    | UserAudioChunk
    | Pong
    | ClientToolResult
    | ContextualUpdate
    | UserMessage
    | UserActivity
)

# --------------------------------------------------------------------------- server → client


class ConversationInitiationMetadataEvent(_Strict):
    conversation_id: str
    agent_output_audio_format: str
    user_input_audio_format: str


class ConversationInitiationMetadata(_Strict):
    type: Literal["conversation_initiation_metadata"]
    conversation_initiation_metadata_event: ConversationInitiationMetadataEvent


class UserTranscriptionEvent(_Strict):
    user_transcript: str


class UserTranscript(_Strict):
    type: Literal["user_transcript"]
    user_transcription_event: UserTranscriptionEvent


class AgentResponseEvent(_Strict):
    agent_response: str


class AgentResponse(_Strict):
    type: Literal["agent_response"]
    agent_response_event: AgentResponseEvent


class AgentResponseCorrectionEvent(_Strict):
    original_agent_response: str
    corrected_agent_response: str


class AgentResponseCorrection(_Strict):
    type: Literal["agent_response_correction"]
    agent_response_correction_event: AgentResponseCorrectionEvent


class AudioAlignment(_Strict):
    chars: list[str]
    char_start_times_ms: list[int]
    char_durations_ms: list[int]


class AudioEvent(_Strict):
    audio_base_64: str
    event_id: int
    alignment: AudioAlignment | None = None


class AudioResponse(_Strict):
    type: Literal["audio"]
    audio_event: AudioEvent


class InterruptionEvent(_Strict):
    event_id: int


class Interruption(_Strict):
    type: Literal["interruption"]
    interruption_event: InterruptionEvent


class PingEvent(_Strict):
    event_id: int
    ping_ms: int | None = None


class Ping(_Strict):
    type: Literal["ping"]
    ping_event: PingEvent


class ClientToolCallEvent(_Strict):
    tool_name: str
    tool_call_id: str
    parameters: dict[str, Any]


class ClientToolCall(_Strict):
    type: Literal["client_tool_call"]
    client_tool_call: ClientToolCallEvent


class VadScoreEvent(_Strict):
    vad_score: float = Field(ge=0, le=1)


class VadScore(_Strict):
    type: Literal["vad_score"]
    vad_score_event: VadScoreEvent


class TentativeAgentResponseEvent(_Strict):
    tentative_agent_response: str


class InternalTentativeAgentResponse(_Strict):
    type: Literal["internal_tentative_agent_response"]
    tentative_agent_response_internal_event: TentativeAgentResponseEvent


ServerMessage = (
    ConversationInitiationMetadata
    | UserTranscript
    | AgentResponse
    | AgentResponseCorrection
    | AudioResponse
    | Interruption
    | Ping
    | ClientToolCall
    | ContextualUpdate
    | VadScore
    | InternalTentativeAgentResponse
)

# --------------------------------------------------------------------------- validation


def _by_type(union: Any) -> dict[str, type[BaseModel]]:
    table: dict[str, type[BaseModel]] = {}
    for member in typing.get_args(union):
        field = member.model_fields.get("type")
        if field is not None:
            (literal,) = typing.get_args(field.annotation)
            table[literal] = member
    return table


CLIENT_MESSAGES: Mapping[str, type[BaseModel]] = _by_type(ClientMessage)
"""Client message ``type`` → model (six; :class:`UserAudioChunk` has no ``type``)."""

SERVER_MESSAGES: Mapping[str, type[BaseModel]] = _by_type(ServerMessage)
"""Server message ``type`` → model (the eleven of the AsyncAPI)."""

_UNION_TAGS = frozenset({"str", "bool", "int", "float"})


class MessageInvalid(ValueError):
    """A message does not match the protocol; ``code`` is one of ``invalid_value``,
    ``unknown_type``, ``unknown_parameter``, ``missing_required_parameter``."""

    def __init__(self, code: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path


def _path(loc: tuple[int | str, ...]) -> str:
    parts = list(loc)
    while parts and parts[-1] in _UNION_TAGS:  # pydantic names the union member it tried
        parts.pop()
    return ".".join(str(p) for p in parts)


def _validate(data: Any, table: Mapping[str, type[BaseModel]]) -> BaseModel:
    if not isinstance(data, dict):
        raise MessageInvalid("invalid_value", "A message must be a JSON object.")
    kind = data.get("type")
    found = table.get(kind) if isinstance(kind, str) else None
    if kind is None and "user_audio_chunk" in data:
        found = UserAudioChunk
    if found is None:
        raise MessageInvalid(
            "unknown_type",
            f"Unknown message type {kind!r}; expected one of {', '.join(sorted(table))}.",
            "type",
        )
    cls: type[BaseModel] = found
    try:
        return cls.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        path = _path(first["loc"])
        if first["type"] == "extra_forbidden":
            raise MessageInvalid("unknown_parameter", f"Unknown field '{path}'.", path) from None
        if first["type"] == "missing":
            raise MessageInvalid(
                "missing_required_parameter", f"Missing required field '{path}'.", path
            ) from None
        raise MessageInvalid(
            "invalid_value", f"Invalid value for '{path}': {first['msg']}.", path
        ) from None


def parse_client_message(data: Any) -> ClientMessage:
    """Validate one decoded client message; return its model or raise :class:`MessageInvalid`."""
    return typing.cast(ClientMessage, _validate(data, CLIENT_MESSAGES))


def validate_server_message(data: Any) -> ServerMessage:
    """Validate one server message (what the fake emits); raise :class:`MessageInvalid`."""
    return typing.cast(ServerMessage, _validate(data, SERVER_MESSAGES))
