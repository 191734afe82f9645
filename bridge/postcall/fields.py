"""The post-call answer: its JSON schema (from the agent's ``collect_fields``) and its check.

The language model is asked for ``{"summary": str, "collected": {<field>: value | null}}`` with
OpenAI's strict structured outputs: every property required, ``additionalProperties: false``,
``null`` allowed for each field (a field the call did not establish). :func:`parse_answer`
checks a reply against the same rules, because not every OpenAI-compatible server enforces
the schema: a value of the wrong type or an enum value not listed rejects the whole answer
(:class:`AnswerInvalid`); a missing field becomes ``null``; keys not asked for are dropped.

Pure: no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from bridge.agents.model import CollectField

__all__ = ["MAX_SUMMARY_CHARS", "AnswerInvalid", "answer_schema", "check_value", "parse_answer"]

MAX_SUMMARY_CHARS = 4000
_JSON_TYPES = {"string": "string", "number": "number", "boolean": "boolean"}


class AnswerInvalid(ValueError):
    """The model's reply is not the JSON the schema asks for (the message says why)."""


def _field_schema(field: CollectField) -> dict[str, Any]:
    description = field.description or field.name.replace("_", " ")
    if field.type == "enum":
        return {
            "type": ["string", "null"],
            "enum": [*field.values, None],
            "description": description,
        }
    return {"type": [_JSON_TYPES[field.type], "null"], "description": description}


def answer_schema(fields: Sequence[CollectField]) -> dict[str, Any]:
    """The JSON schema of the answer (valid for OpenAI's strict structured outputs)."""
    properties = {field.name: _field_schema(field) for field in fields}
    return {
        "type": "object",
        "properties": {
            "summary": {
                "type": "string",
                "description": "Two to four sentences: who called, what they wanted, what was "
                "agreed or done, and anything left open.",
            },
            "collected": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
        "required": ["summary", "collected"],
        "additionalProperties": False,
    }


def check_value(field: CollectField, value: Any) -> Any:
    """``value`` if it fits ``field`` (strings stripped; an empty one is ``None``); raises
    :class:`AnswerInvalid` otherwise."""
    if value is None:
        return None
    match field.type:
        case "string" if isinstance(value, str):
            return value.strip()[:1000] or None
        case "number" if (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            return value
        case "boolean" if isinstance(value, bool):
            return value
        case "enum" if isinstance(value, str) and value in field.values:
            return value
    expected = "one of " + ", ".join(field.values) if field.type == "enum" else field.type
    raise AnswerInvalid(f"collected.{field.name}: expected {expected} or null")


def parse_answer(text: str, fields: Sequence[CollectField]) -> tuple[str, dict[str, Any]]:
    """The summary and the collected fields of a reply; raises :class:`AnswerInvalid`."""
    try:
        value = json.loads(text)
    except ValueError:
        raise AnswerInvalid("the reply is not JSON") from None
    if not isinstance(value, dict):
        raise AnswerInvalid("the reply is not a JSON object")
    summary = value.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise AnswerInvalid("summary: expected a non-empty string")
    collected = value.get("collected", {})
    if collected is None:
        collected = {}
    if not isinstance(collected, dict):
        raise AnswerInvalid("collected: expected an object")
    out = {field.name: check_value(field, collected.get(field.name)) for field in fields}
    return summary.strip()[:MAX_SUMMARY_CHARS], out
