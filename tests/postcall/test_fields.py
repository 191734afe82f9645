"""The post-call answer's schema and the check of a model's reply."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.agents.model import CollectField
from bridge.postcall.fields import MAX_SUMMARY_CHARS, AnswerInvalid, answer_schema, parse_answer

FIELDS = (
    CollectField("caller_name", "The caller's name"),
    CollectField("party_size", "", "number"),
    CollectField("reminder", "Wants a reminder", "boolean"),
    CollectField("visit", "", "enum", ("checkup", "cleaning")),
)


def _strict(schema: dict[str, Any]) -> None:
    """OpenAI's strict structured outputs: every object closed, every property required."""
    if schema.get("type") == "object":
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) == set(schema["properties"])
        for child in schema["properties"].values():
            _strict(child)


def test_schema_is_strict_and_nullable() -> None:
    schema = answer_schema(FIELDS)
    _strict(schema)
    collected = schema["properties"]["collected"]["properties"]
    assert collected["caller_name"] == {
        "type": ["string", "null"],
        "description": "The caller's name",
    }
    assert collected["party_size"] == {"type": ["number", "null"], "description": "party size"}
    assert collected["reminder"]["type"] == ["boolean", "null"]
    assert collected["visit"] == {
        "type": ["string", "null"],
        "enum": ["checkup", "cleaning", None],
        "description": "visit",
    }
    assert answer_schema(())["properties"]["collected"]["required"] == []


def _answer(summary: Any = "Ada booked a cleaning.", **collected: Any) -> str:
    return json.dumps({"summary": summary, "collected": collected})


def test_a_good_answer() -> None:
    text = _answer(caller_name=" Ada ", party_size=2, reminder=True, visit="cleaning", extra=1)
    summary, collected = parse_answer(text, FIELDS)
    assert summary == "Ada booked a cleaning."
    assert collected == {
        "caller_name": "Ada",
        "party_size": 2,
        "reminder": True,
        "visit": "cleaning",
    }


def test_missing_and_empty_fields_are_null() -> None:
    _, collected = parse_answer(_answer(caller_name="  ", party_size=None), FIELDS)
    assert collected == {"caller_name": None, "party_size": None, "reminder": None, "visit": None}
    _, collected = parse_answer(json.dumps({"summary": "x", "collected": None}), FIELDS)
    assert set(collected.values()) == {None}
    summary, _ = parse_answer(_answer("y" * (MAX_SUMMARY_CHARS + 50)), FIELDS)
    assert len(summary) == MAX_SUMMARY_CHARS


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (_answer(summary=""), "summary"),
        (_answer(summary=3), "summary"),
        (json.dumps({"summary": "x", "collected": [1]}), "collected: expected an object"),
        (_answer(caller_name=3), "collected.caller_name: expected string"),
        (_answer(party_size="four"), "collected.party_size: expected number"),
        (_answer(party_size=True), "collected.party_size: expected number"),
        (_answer(reminder="yes"), "collected.reminder: expected boolean"),
        (_answer(visit="surgery"), "expected one of checkup, cleaning"),
    ],
)
def test_answers_that_do_not_fit_are_rejected(text: str, problem: str) -> None:
    with pytest.raises(AnswerInvalid, match=problem):
        parse_answer(text, FIELDS)
