"""``WS /v1/events``: an organization's journal as it happens, and nobody else's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from bridge.api.app import create_app
from bridge.config import Settings
from bridge.journal.ids import new_call_id
from bridge.session.actions import JournalEvent, JournalTurn
from tests.auth import SECRET_KEY, api_key, bearer
from tests.servers import serve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Any, str]]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}",
        agents_dir=ROOT / "agents",
        prompts_dir=ROOT / "prompts",
        default_agent="default",
        secret_keys=(SECRET_KEY,),
    )
    app = create_app(settings, env={})
    async with serve(app) as hostport:
        yield app, hostport


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return message


async def nothing_more(ws: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), 0.3)


def start(app: Any, org: str) -> str:
    call_id = new_call_id()
    writer = app.state.services.journal
    writer.call_started(
        call_id, carrier="twilio", started_at=datetime.now(UTC), org_id=org, agent="default"
    )
    return call_id


async def test_each_organization_gets_its_own_calls(server: tuple[Any, str]) -> None:
    app, hostport = server
    url = f"ws://{hostport}/v1/events"
    acme_key, globex_key = await api_key(app, "acme", "read"), await api_key(app, "globex", "read")
    writer = app.state.services.journal
    async with (
        connect(url, additional_headers=bearer(acme_key)) as acme,
        connect(url, additional_headers=bearer(globex_key)) as globex,
    ):
        await asyncio.sleep(0.1)  # both subscribed
        theirs = start(app, "globex")
        ours = start(app, "acme")
        writer.record(ours, JournalTurn("agent", "Hello from acme.", 0.5))
        writer.record(theirs, JournalTurn("agent", "Hello from globex.", 0.5))
        writer.record(ours, JournalEvent("barge_in", 1.0, {"heard_ms": 420}))
        writer.call_finished(
            ours, status="completed", end_reason="caller hung up", ended_at=datetime.now(UTC)
        )
        got = [await receive(acme) for _ in range(4)]
        assert [m["type"] for m in got] == ["status", "turn", "event", "status"]
        assert {m["call_id"] for m in got} == {ours}
        assert got[0]["status"] == "in-progress" and got[1]["text"] == "Hello from acme."
        assert got[2]["data"] == {"heard_ms": 420}
        assert got[3] == {
            "type": "status",
            "status": "completed",
            "end_reason": "caller hung up",
            "final": True,
            "call_id": ours,
        }
        await nothing_more(acme)
        seen = [await receive(globex) for _ in range(2)]
        assert {m["call_id"] for m in seen} == {theirs}
        await nothing_more(globex)


async def test_filters_by_type_and_call(server: tuple[Any, str]) -> None:
    app, hostport = server
    key = await api_key(app, "acme", "read")
    writer = app.state.services.journal
    base = f"ws://{hostport}/v1/events"
    async with (
        connect(f"{base}?types=status", additional_headers=bearer(key)) as statuses,
        connect(f"{base}?types=turn,event", additional_headers=bearer(key)) as rows,
    ):
        await asyncio.sleep(0.1)
        first, second = start(app, "acme"), start(app, "acme")
        writer.record(first, JournalTurn("user", "hi", 1.0))
        assert [(await receive(statuses))["call_id"] for _ in range(2)] == [first, second]
        assert (await receive(rows))["text"] == "hi"
        await nothing_more(statuses)
    async with connect(f"{base}?call_id={second}", additional_headers=bearer(key)) as one:
        await asyncio.sleep(0.1)
        writer.record(first, JournalTurn("user", "not this one", 2.0))
        writer.record(second, JournalTurn("user", "this one", 2.0))
        assert (await receive(one))["text"] == "this one"
        await nothing_more(one)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer cb_" + "x" * 40}, 401),
        ({"Authorization": "Basic x"}, 401),
    ],
)
async def test_upgrade_without_a_valid_key_is_refused(
    server: tuple[Any, str], headers: dict[str, str], status: int
) -> None:
    _, hostport = server
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://{hostport}/v1/events", additional_headers=headers):
            pass
    assert refused.value.response.status_code == status
    assert json.loads(refused.value.response.body or b"{}")["detail"]


async def test_unknown_type_filter_is_422(server: tuple[Any, str]) -> None:
    app, hostport = server
    key = await api_key(app, "acme", "read")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            f"ws://{hostport}/v1/events?types=status,bogus", additional_headers=bearer(key)
        ):
            pass
    assert refused.value.response.status_code == 422


async def test_the_socket_ends_cleanly_when_the_client_leaves(server: tuple[Any, str]) -> None:
    app, hostport = server
    feed = app.state.services.journal.feed
    key = await api_key(app, "acme", "read")
    before = feed.subscribers
    async with connect(f"ws://{hostport}/v1/events", additional_headers=bearer(key)):
        await asyncio.sleep(0.1)
        assert feed.subscribers == before + 1
    for _ in range(50):
        if feed.subscribers == before:
            break
        await asyncio.sleep(0.02)
    assert feed.subscribers == before
    async with httpx.AsyncClient(base_url=f"http://{hostport}") as http:
        assert (await http.get("/healthz")).status_code == 200
