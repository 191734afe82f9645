"""Strict validation of OpenAI Realtime (GA) events against the official SDK's own models.

The SDK models (``openai.types.realtime``) are permissive: every model accepts unknown keys
(``extra="allow"``) and the unions are "smart", so a beta-shaped event can slip through. Here:

* the event class is picked by its ``type`` literal (an unknown type — e.g. a beta name such as
  ``response.audio.delta`` — is rejected outright);
* ``model_validate`` then checks required fields and value types;
* unknown keys are rejected at **every** depth (``session.input_audio_format`` is a beta
  leftover the top-level check alone would miss), apart from a short allow-list of keys the
  real server adds to what it sends.

Validation never raises pydantic's errors: it raises :class:`EventInvalid`, which carries the
fields an OpenAI ``error`` event needs (``code``, ``param``, ``message``).
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from typing import Any

import pydantic
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

__all__ = [
    "CLIENT_EVENTS",
    "SERVER_EVENTS",
    "EventInvalid",
    "validate_client_event",
    "validate_server_event",
]

Model = pydantic.BaseModel


def _by_type(union: Any) -> dict[str, type[Model]]:
    members = typing.get_args(typing.get_args(union)[0])
    table: dict[str, type[Model]] = {}
    for member in members:
        (literal,) = typing.get_args(member.model_fields["type"].annotation)
        table[literal] = member
    return table


CLIENT_EVENTS: Mapping[str, type[Model]] = _by_type(RealtimeClientEvent)
"""Client event ``type`` → SDK model (11 entries in openai 3.52)."""

SERVER_EVENTS: Mapping[str, type[Model]] = _by_type(RealtimeServerEvent)
"""Server event ``type`` → SDK model (46 entries in openai 3.52)."""

# Keys the real server puts in `session` that the SDK's request-shaped model does not declare.
_SERVER_EXTRA_ALLOWED = frozenset({"session.id", "session.object", "session.expires_at"})


class EventInvalid(ValueError):
    """An event does not match the GA schema; fields mirror an OpenAI ``error`` payload."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def _extra_keys(value: Any, path: str) -> Iterator[str]:
    """Dotted paths of every key a model accepted without declaring it."""
    if isinstance(value, Model):
        for key in value.model_extra or {}:
            yield f"{path}.{key}" if path else key
        for name in type(value).model_fields:
            yield from _extra_keys(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _extra_keys(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _extra_keys(item, f"{path}.{key}")


def _loc(loc: tuple[int | str, ...]) -> str:
    """pydantic location → dotted parameter name, dropping union-member class names."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part[:1].isupper() or part.startswith(("function-", "literal[", "union[")):
            continue
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts)


def _validate(data: Any, table: Mapping[str, type[Model]], allowed_extra: frozenset[str]) -> Model:
    if not isinstance(data, dict):
        raise EventInvalid("invalid_value", "An event must be a JSON object.")
    kind = data.get("type")
    cls = table.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EventInvalid(
            "invalid_value",
            f"Invalid value: {kind!r}. Supported values are: {', '.join(sorted(table))}.",
            "type",
        )
    try:
        model = cls.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        param = _loc(first["loc"])
        if first["type"] == "missing":
            raise EventInvalid(
                "missing_required_parameter", f"Missing required parameter: '{param}'.", param
            ) from None
        raise EventInvalid(
            "invalid_value",
            f"Invalid value for '{param}': {first['msg']} ({exc.error_count()} error(s)).",
            param,
        ) from None
    extra = [path for path in _extra_keys(model, "") if path not in allowed_extra]
    if extra:
        raise EventInvalid("unknown_parameter", f"Unknown parameter: '{extra[0]}'.", extra[0])
    return model


def validate_client_event(data: Any) -> Model:
    """Validate one decoded client event; return its SDK model or raise :class:`EventInvalid`."""
    return _validate(data, CLIENT_EVENTS, frozenset())


def validate_server_event(data: Any) -> Model:
    """Validate one server event (what the fake emits); raise :class:`EventInvalid` if wrong."""
    return _validate(data, SERVER_EVENTS, _SERVER_EXTRA_ALLOWED)
