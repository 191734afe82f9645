"""The console's API: a call's live journal over SSE, the agent list, the WebRTC config."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bridge.api.app import create_app
from bridge.config import Settings
from bridge.journal.ids import new_call_id
from bridge.session.actions import JournalEvent, JournalToolCall, JournalTurn
from tests.auth import SECRET_KEY, authorize
from tests.servers import serve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}",
        agents_dir=ROOT / "agents",
        prompts_dir=ROOT / "prompts",
        default_agent="default",
        ice_servers=({"urls": ["stun:stun.example.org:3478"]},),
        secret_keys=(SECRET_KEY,),
    )
    app = create_app(settings, env={})
    async with (
        serve(app) as hostport,
        httpx.AsyncClient(base_url=f"http://{hostport}", timeout=10) as http,
    ):
        await authorize(app, http)
        yield app, http


async def read_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append((kind, orjson.loads(line[6:])))
    return events


async def test_live_call_streams_rows_as_they_are_journaled(server: Any) -> None:
    app, http = server
    writer = app.state.services.journal
    call_id = new_call_id()
    writer.call_started(call_id, carrier="webrtc", started_at=datetime.now(UTC), agent="demo")
    writer.record(call_id, JournalTurn("agent", "Hello there.", 0.0))
    async with http.stream("GET", f"/v1/calls/{call_id}/live") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        reading = asyncio.create_task(read_events(response))
        await asyncio.sleep(0.1)  # the stream is open before the rest happens
        writer.record(call_id, JournalTurn("user", "<b>hi</b>", 1.5))
        writer.record(call_id, JournalEvent("barge_in", 2.0, {"heard_ms": 120.0}))
        writer.record(
            call_id, JournalToolCall("t1", "lookup", {"id": "7"}, '{"ok":1}', True, 2.5, 12.0)
        )
        writer.call_finished(
            call_id, status="completed", end_reason="caller hung up", ended_at=datetime.now(UTC)
        )
        events = await asyncio.wait_for(reading, 5)

    kinds = [kind for kind, _ in events]
    assert kinds == ["status", "turn", "turn", "event", "tool_call", "status"]
    assert events[0][1]["status"] == "in-progress" and events[0][1]["agent"] == "demo"
    assert events[2][1] == {
        "type": "turn",
        "role": "user",
        "text": "<b>hi</b>",
        "time_in_call_secs": 1.5,
        "interrupted": False,
        "call_id": call_id,
    }
    assert events[3][1]["data"] == {"heard_ms": 120.0}
    assert events[4][1]["tool_call_id"] == "t1" and events[4][1]["ok"] is True
    assert events[5][1]["status"] == "completed" and events[5][1]["final"] is True
    assert app.state.services.journal.feed.subscribers == 0


async def test_finished_call_is_replayed_from_the_journal(server: Any) -> None:
    app, http = server
    writer = app.state.services.journal
    writer.feed._keep_finished = 0  # as if the server had restarted: nothing live to follow
    call_id = new_call_id()
    writer.call_started(call_id, carrier="twilio", started_at=datetime.now(UTC))
    writer.record(call_id, JournalTurn("user", "late", 3.0))
    writer.record(call_id, JournalTurn("agent", "early", 1.0))
    writer.call_finished(call_id, status="failed", end_reason="boom", ended_at=datetime.now(UTC))
    await writer.flush()
    assert not writer.feed.known(call_id)

    async with http.stream("GET", f"/v1/calls/{call_id}/live") as response:
        events = await read_events(response)

    assert [(k, e.get("text") or e.get("status")) for k, e in events] == [
        ("status", "in-progress"),
        ("turn", "early"),
        ("turn", "late"),
        ("status", "failed"),
    ]
    assert events[-1][1]["final"] is True and events[-1][1]["end_reason"] == "boom"


async def test_live_of_an_unknown_call_is_404(server: Any) -> None:
    _, http = server
    response = await http.get(f"/v1/calls/{new_call_id()}/live")
    assert response.status_code == 404
    assert response.json() == {"detail": "call not found"}


async def test_agents_and_webrtc_config(server: Any) -> None:
    _, http = server
    agents = (await http.get("/v1/agents")).json()["agents"]
    by_name = {a["name"]: a for a in agents}
    assert {"default", "demo", "support"} <= set(by_name)
    assert by_name["default"]["default"] is True and by_name["demo"]["default"] is False
    assert by_name["demo"]["engine"] == "pipeline" and by_name["demo"]["has_greeting"] is True
    assert not any("secret" in key or "key" in key for a in agents for key in a)
    config = (await http.get("/v1/webrtc/config")).json()
    assert config == {
        "ice_servers": [
            {"urls": ["stun:stun.example.org:3478"], "username": None, "credential": None}
        ]
    }


async def test_console_is_served(server: Any) -> None:
    _, http = server
    home = await http.get("/")
    assert home.status_code == 307 and home.headers["location"] == "/console/"
    for page in ("", "calls.html", "call.html", "call-page.js", "common.js", "console.css"):
        response = await http.get(f"/console/{page}")
        assert response.status_code == 200, page
    schema = (await http.get("/openapi.json")).json()
    assert "/v1/webrtc/offer" in schema["paths"] and "/v1/calls/{call_id}/live" in schema["paths"]
