"""The post-call step through the served app and the repository's fake OpenAI-compatible chat
server: the request (validated by the fake against the ``openai`` SDK's own types, and here
against the schema built from the agent's ``collect_fields``), the stored result, and the
offline fallback when the model fails or answers out of schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.agents.model import CollectField
from bridge.postcall.fields import answer_schema
from tests.fakes.openai_chat import FakeChatLLM
from tests.fakes.openai_script import Reply
from tests.webhooks.harness import DIALOG, Bridge, eventually, running

FIELDS = """
    [[collect_fields]]
    name = "caller_name"
    description = "The caller's name"

    [[collect_fields]]
    name = "party_size"
    type = "number"

    [[collect_fields]]
    name = "visit"
    type = "enum"
    values = ["checkup", "cleaning"]
"""
SCHEMA = answer_schema(
    (
        CollectField("caller_name", "The caller's name"),
        CollectField("party_size", "", "number"),
        CollectField("visit", "", "enum", ("checkup", "cleaning")),
    )
)
GOOD: dict[str, Any] = {
    "summary": "Ada booked a cleaning for two.",
    "collected": {"caller_name": "Ada", "party_size": 2, "visit": "cleaning"},
}


def agents(base_url: str) -> dict[str, str]:
    own_llm = f"""
        engine = "pipeline"
        instructions = "Book visits."
        [llm]
        provider = "openai"
        model = "gpt-own"
        base_url = "{base_url}"
    """
    return {
        "idle": 'engine = "openai_realtime"\ninstructions = "x"',
        "own": own_llm + FIELDS,
        "scripted": DIALOG + FIELDS,
    }


async def summarized(bridge: Bridge, call_id: str) -> dict[str, Any]:
    async def done() -> bool:
        return (await bridge.call(call_id))["summary"] is not None

    await eventually(done, 15, "the summary")
    return await bridge.call(call_id)


def postcall_event(call: dict[str, Any]) -> dict[str, Any]:
    (event,) = [e["data"] for e in call["events"] if e["kind"] == "postcall"]
    return dict(event)


async def test_the_agents_own_model_summarises(tmp_path: Path) -> None:
    async with FakeChatLLM(lambda _: Reply.say(json.dumps(GOOD)), tokens_per_s=0) as fake:
        async with running(tmp_path, agents=agents(fake.base_url)) as bridge:
            call_id = bridge.fake_call(agent="own", turns=3)
            call = await summarized(bridge, call_id)
        (request,) = fake.requests
    assert call["summary"] == GOOD["summary"]
    assert call["collected"] == GOOD["collected"]
    assert postcall_event(call) == {"method": "llm", "model": "gpt-own"}
    body = request.body
    assert body["model"] == "gpt-own" and "stream" not in body
    assert body["temperature"] == 0
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "call_summary", "schema": SCHEMA, "strict": True},
    }
    system, user = body["messages"]
    assert system["role"] == "system" and "- visit (one of: checkup, cleaning)" in system["content"]
    assert "- caller_name (string): The caller's name" in system["content"]
    assert user["content"].startswith("Call: inbound twilio call, agent own, from +15550001111")
    assert "[00:00] Agent: turn 0\n[00:01] Caller: turn 1\n[00:02] Agent: turn 2" in user["content"]
    assert '[00:09] Tool lookup({"n": 1}) -> {}' in user["content"]
    assert request.headers["authorization"] == "Bearer none"  # no key configured: a local server


async def test_the_server_model_summarises_agents_without_one(tmp_path: Path) -> None:
    async with (
        FakeChatLLM(
            lambda _: Reply.say(json.dumps(GOOD)), tokens_per_s=0, api_key="sk-test"
        ) as fake,
        running(
            tmp_path,
            agents=agents(fake.base_url),
            openai_api_key="sk-test",
            openai_base_url=fake.base_url,
            summary_model="gpt-summary",
        ) as bridge,
    ):
        call = await summarized(bridge, bridge.fake_call(agent="scripted"))
    assert [r.body["model"] for r in fake.requests] == ["gpt-summary"]
    assert postcall_event(call) == {"method": "llm", "model": "gpt-summary"}
    assert call["collected"] == GOOD["collected"]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("down", "language model: InternalServerError"),
        ("not json", "language model answer rejected: the reply is not JSON"),
        ("wrong type", "language model answer rejected: collected.party_size: expected number"),
        ("unknown value", "language model answer rejected: collected.visit: expected one of"),
    ],
)
async def test_failures_fall_back_offline_and_say_so(
    tmp_path: Path, failure: str, reason: str
) -> None:
    answers = {
        "down": "",
        "not json": "Sure! Here is the summary: Ada called.",
        "wrong type": json.dumps({**GOOD, "collected": {**GOOD["collected"], "party_size": "2"}}),
        "unknown value": json.dumps({**GOOD, "collected": {**GOOD["collected"], "visit": "x"}}),
    }
    async with (
        FakeChatLLM(
            lambda _: Reply.say(answers[failure]),
            tokens_per_s=0,
            fail_status=500 if failure == "down" else None,
        ) as fake,
        running(tmp_path, agents=agents(fake.base_url)) as bridge,
    ):
        call = await summarized(bridge, bridge.fake_call(agent="own", turns=3))
    assert fake.requests
    event = postcall_event(call)
    assert event["method"] == "offline" and event["model"] == "gpt-own"
    assert event["reason"].startswith(reason), event
    assert call["summary"].startswith("Inbound twilio call from +15550001111 with agent own")
    assert call["collected"] == {"caller_name": None, "party_size": None, "visit": None}
    assert call["status"] == "completed" and len(call["transcript"]) == 3  # the call is intact


async def test_without_a_model_the_offline_fallback_runs(tmp_path: Path) -> None:
    async with running(tmp_path, agents=agents("http://127.0.0.1:9/v1")) as bridge:
        call = await summarized(bridge, bridge.fake_call(agent="scripted", turns=2))
        silent = await summarized(bridge, bridge.fake_call(agent="own", turns=0))
    assert postcall_event(call) == {"method": "offline", "reason": "no language model configured"}
    assert call["summary"] == (
        "Inbound twilio call from +15550001111 with agent scripted, 10 s, ended completed "
        "(caller hung up). 2 turns, 1 from the caller. The caller said: “turn 1”."
    )
    # no transcript: nothing to ask a model about
    assert postcall_event(silent) == {
        "method": "offline",
        "model": "gpt-own",
        "reason": "no transcript",
    }
    assert silent["summary"].endswith("No conversation was recorded.")
