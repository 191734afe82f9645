"""GET /v1/calls and GET /v1/calls/{call_id} over a real (SQLite) journal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bridge.api.calls import get_journal
from bridge.journal.ids import new_call_id
from bridge.journal.store import JournalError, JournalStore
from bridge.session.actions import JournalEvent, JournalToolCall, JournalTurn

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


async def _call(journal: JournalStore, minutes: int = 0, **fields: Any) -> str:
    call_id = new_call_id()
    started = T0 + timedelta(minutes=minutes)
    await journal.create_call(call_id, carrier="twilio", started_at=started, **fields)
    return call_id


async def _ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/v1/calls", params=params)
    assert response.status_code == 200, response.text
    return [call["id"] for call in response.json()["calls"]]


async def test_list_shape_and_order(client: httpx.AsyncClient, journal: JournalStore) -> None:
    first = await _call(journal, 0, agent="sales", call_sid="CA1", context={"lead": 7})
    second = await _call(journal, 5, agent="support")
    response = await client.get("/v1/calls")
    assert response.status_code == 200
    body = response.json()
    assert [call["id"] for call in body["calls"]] == [second, first]  # newest first
    assert body["next_since_id"] == second  # the greatest id: poll after everything seen
    call = body["calls"][1]
    assert call["agent"] == "sales"
    assert call["call_sid"] == "CA1"
    assert call["status"] == "in-progress"
    assert call["context"] == {"lead": 7}
    assert call["ended_at"] is None
    assert datetime.fromisoformat(call["started_at"]) == T0
    assert datetime.fromisoformat(call["started_at"]).utcoffset() == timedelta(0)


async def test_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/calls")
    assert response.json() == {"calls": [], "next_since_id": None}


async def test_filters(client: httpx.AsyncClient, journal: JournalStore) -> None:
    a = await _call(journal, 0, agent="sales", call_sid="CA1")
    b = await _call(journal, 60, agent="support")
    c = await _call(journal, 120, agent="sales")
    await journal.finish_call(c, status="failed", end_reason="engine", ended_at=T0)
    assert await _ids(client, agent="sales") == [c, a]
    assert await _ids(client, status="in-progress") == [b, a]
    assert await _ids(client, status="failed", agent="sales") == [c]
    assert await _ids(client, call_sid="CA1") == [a]
    assert await _ids(client, limit=1) == [c]
    # ISO 8601 with offsets; 10:30+01:00 is 09:30Z: inclusive after, exclusive before
    assert await _ids(client, started_after="2025-03-01T10:30:00+01:00") == [c, b, a]
    assert await _ids(client, started_after="2025-03-01T09:30:00.000001Z") == [c, b]
    assert await _ids(client, started_before="2025-03-01T11:30:00Z") == [b, a]


async def test_since_id_pages_with_next_since_id(
    client: httpx.AsyncClient, journal: JournalStore
) -> None:
    created = [await _call(journal, n, agent="bot") for n in range(5)]
    seen: list[str] = []
    params: dict[str, Any] = {"since_id": "0" * 26, "limit": 2, "agent": "bot"}
    while True:
        body = (await client.get("/v1/calls", params=params)).json()
        if not body["calls"]:
            assert body["next_since_id"] is None
            break
        seen.extend(call["id"] for call in body["calls"])
        assert body["next_since_id"] == body["calls"][-1]["id"]
        params["since_id"] = body["next_since_id"]
    assert seen == created


async def test_detail(client: httpx.AsyncClient, journal: JournalStore) -> None:
    call_id = await _call(journal, agent="support")
    await journal.add_records(
        call_id,
        [
            JournalTurn("agent", "Hi!", 0.3),
            JournalEvent("barge_in", 1.2, {"heard_ms": 640}),
            JournalTurn("user", "Stop", 1.1, interrupted=False),
            JournalToolCall("tc_9", "transfer", {"to": "+1555"}, "ok", True, 2.0, 310.5),
        ],
    )
    await journal.finish_call(
        call_id, status="completed", end_reason="hangup", ended_at=T0 + timedelta(seconds=30)
    )
    response = await client.get(f"/v1/calls/{call_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == call_id
    assert body["status"] == "completed"
    assert body["duration_secs"] == 30.0
    assert body["end_reason"] == "hangup"
    assert body["transcript"] == [
        {"role": "agent", "text": "Hi!", "time_in_call_secs": 0.3, "interrupted": False},
        {"role": "user", "text": "Stop", "time_in_call_secs": 1.1, "interrupted": False},
    ]
    assert body["events"] == [
        {"kind": "barge_in", "time_in_call_secs": 1.2, "data": {"heard_ms": 640}}
    ]
    assert body["tool_calls"] == [
        {
            "tool_call_id": "tc_9",
            "name": "transfer",
            "arguments": {"to": "+1555"},
            "output": "ok",
            "ok": True,
            "time_in_call_secs": 2.0,
            "duration_ms": 310.5,
        }
    ]


async def test_unknown_call_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/calls/{new_call_id()}")
    assert response.status_code == 404
    assert response.json() == {"detail": "call not found"}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "many"},
        {"started_after": "yesterday"},
        {"started_after": "2025-03-01T09:30:00"},  # no offset: ambiguous, refused
        {"since_id": "not-an-id"},
    ],
)
async def test_bad_query_is_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await client.get("/v1/calls", params=params)
    assert response.status_code == 422


async def test_limit_bounds_are_accepted(client: httpx.AsyncClient) -> None:
    for limit in (1, 500):
        assert (await client.get("/v1/calls", params={"limit": limit})).status_code == 200


async def test_journal_unavailable_is_503(app: FastAPI, client: httpx.AsyncClient) -> None:
    class DownStore(JournalStore):
        async def list_calls(self, **_: Any) -> Any:
            raise JournalError(
                "list_calls failed: database is locked", operation="list_calls", retryable=True
            )

        async def get_call(self, call_id: str, **_: Any) -> Any:
            raise JournalError("get_call failed", operation="get_call", call_id=call_id)

    journal = app.state.journal
    app.dependency_overrides[get_journal] = lambda: DownStore(journal.engine)
    assert (await client.get("/v1/calls")).status_code == 503
    assert (await client.get(f"/v1/calls/{new_call_id()}")).status_code == 500


async def test_every_route_needs_a_key(app: FastAPI, client: httpx.AsyncClient) -> None:
    del client.headers["Authorization"]
    for path in ("/v1/calls", f"/v1/calls/{new_call_id()}", f"/v1/calls/{new_call_id()}/live"):
        response = await client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"detail": "missing API key (Authorization: Bearer …)"}


async def test_openapi_documents_the_models(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert {"CallListOut", "CallDetailOut", "TurnOut", "EventOut", "ToolCallOut"} <= set(schemas)
    detail = spec["paths"]["/v1/calls/{call_id}"]["get"]["responses"]
    assert "404" in detail
    list_params = {p["name"] for p in spec["paths"]["/v1/calls"]["get"]["parameters"]}
    assert list_params == {
        "agent",
        "status",
        "started_after",
        "started_before",
        "since_id",
        "call_sid",
        "limit",
    }


async def test_missing_journal_is_a_server_error(app: FastAPI) -> None:
    del app.state.journal
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/v1/calls")).status_code == 500
