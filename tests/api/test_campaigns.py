"""Dialer campaigns through the API, with the ``twilio`` package dialing a fake Twilio.

The test plays Twilio: every call the dialer places shows up in the fake REST API, and the
test ends it the way Twilio would — a signed status callback (``completed``, ``busy``,
``no-answer``). Ticks of the dialer are driven explicitly (``dialer.tick()``) so each step is
deterministic; the background loop runs too, and they never overlap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.runtime.campaigns import CallingWindow
from tests.api.test_outbound_and_control import (
    PUBLIC,
    TOKEN,
    Bridge,
    RestCall,
    running,
)
from tests.auth import api_key, bearer
from tests.fakes.twilio_voice import FakeTwilioRest, new_sid

NUMBERS = [f"+1555010000{i}" for i in range(6)]
SLOW = {"campaign_tick_s": 3600.0}  # the test ticks; the loop only wakes on start/resume


async def create(bridge: Bridge, **body: Any) -> dict[str, Any]:
    payload = {"name": "renewals", "agent": "caller", "numbers": NUMBERS[:4], **body}
    response = await bridge.http.post("/v1/campaigns", json=payload, headers=bridge.acme)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def post(bridge: Bridge, path: str) -> httpx.Response:
    return await bridge.http.post(path, headers=bridge.acme)


async def tick(bridge: Bridge) -> None:
    await bridge.app.state.services.journal.flush()
    await bridge.app.state.dialer.tick()
    await bridge.app.state.services.journal.flush()


async def end_call(bridge: Bridge, call: RestCall, status: str, duration: str = "0") -> None:
    callback = call.one("StatusCallback") or ""
    params = {
        "AccountSid": bridge.rest.account_sid,
        "CallSid": call.sid,
        "CallStatus": status,
        "CallDuration": duration,
    }
    response = await bridge.twilio.post(callback.removeprefix(PUBLIC), params)
    assert response.status_code == 204, response.text


def open_calls(bridge: Bridge, ended: set[str]) -> list[RestCall]:
    return [call for sid, call in bridge.rest.calls.items() if sid not in ended]


async def campaign(bridge: Bridge, campaign_id: str) -> dict[str, Any]:
    response = await bridge.http.get(f"/v1/campaigns/{campaign_id}", headers=bridge.acme)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_never_more_than_max_concurrent_and_retries_busy(tmp_path: Path) -> None:
    async with running(tmp_path, **SLOW) as bridge:
        created = await create(
            bridge, numbers=NUMBERS[:5], max_concurrent=2, max_attempts=2, retry_delay_s=0
        )
        cid = created["id"]
        assert created["status"] == "draft" and created["aggregates"]["numbers"] == 5
        assert (await post(bridge, f"/v1/campaigns/{cid}/start")).status_code == 200
        assert (await post(bridge, f"/v1/campaigns/{cid}/start")).status_code == 409

        ended: set[str] = set()
        outcomes = {NUMBERS[0]: ["busy", "completed"], NUMBERS[1]: ["no-answer", "no-answer"]}
        peak = 0
        for _ in range(30):
            await tick(bridge)
            live = open_calls(bridge, ended)
            peak = max(peak, len(live))
            assert len(live) <= 2, "more calls at once than max_concurrent"
            if not live:
                break
            call = live[0]
            to = call.one("To") or ""
            status = outcomes.get(to, ["completed"]).pop(0) if to in outcomes else "completed"
            await end_call(bridge, call, status, "7" if status == "completed" else "0")
            ended.add(call.sid)
        await tick(bridge)
        assert peak == 2
        out = await campaign(bridge, cid)
        assert out["status"] == "completed"
        totals = out["aggregates"]
        assert totals["numbers"] == 5 and totals["done"] == 4 and totals["failed"] == 1
        assert totals["success"] == 4 and totals["attempts"] == 7
        assert totals["pending"] == 0 and totals["dialing"] == 0
        assert totals["total_duration_secs"] >= 0
        contacts = (
            await bridge.http.get(f"/v1/campaigns/{cid}/contacts", headers=bridge.acme)
        ).json()["contacts"]
        by_number = {c["number"]: c for c in contacts}
        assert by_number[NUMBERS[0]]["attempts"] == 2 and by_number[NUMBERS[0]]["success"]
        assert by_number[NUMBERS[1]]["status"] == "failed"
        assert by_number[NUMBERS[1]]["outcome"] == "no-answer"
        # every call carries the campaign in the journal
        calls = (await bridge.http.get("/v1/calls?limit=50", headers=bridge.acme)).json()["calls"]
        assert len(calls) == 7 and {c["campaign_id"] for c in calls} == {cid}
        runs = (await bridge.http.get(f"/v1/campaigns/{cid}/runs", headers=bridge.acme)).json()
        assert [r["end_reason"] for r in runs["runs"]] == ["every number is done"]


async def test_pause_and_resume_across_a_restart(tmp_path: Path) -> None:
    rest = FakeTwilioRest(new_sid("AC"), TOKEN)
    async with running(tmp_path, rest=rest, **SLOW) as bridge:
        cid = (await create(bridge, max_concurrent=1))["id"]
        assert (await post(bridge, f"/v1/campaigns/{cid}/start")).status_code == 200
        await tick(bridge)
        (first,) = rest.calls.values()
        paused = await post(bridge, f"/v1/campaigns/{cid}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        assert (await post(bridge, f"/v1/campaigns/{cid}/pause")).status_code == 409
        await end_call(bridge, first, "completed", "12")
        await tick(bridge)  # settles the call, dials nothing
        assert len(rest.calls) == 1
        assert (await campaign(bridge, cid))["aggregates"]["done"] == 1

    async with running(tmp_path, rest=rest, **SLOW) as bridge:  # a new server, same journal
        await tick(bridge)
        assert len(rest.calls) == 1  # still paused
        resumed = await post(bridge, f"/v1/campaigns/{cid}/resume")
        assert resumed.status_code == 200, resumed.text
        ended = {first.sid}
        while len(ended) < 4:
            await tick(bridge)
            live = open_calls(bridge, ended)
            assert len(live) == 1
            await end_call(bridge, live[0], "completed", "5")
            ended.add(live[0].sid)
        await tick(bridge)
        dialed = [call.one("To") for call in rest.calls.values()]
        assert dialed == NUMBERS[:4]  # each once, in list order
        out = await campaign(bridge, cid)
        assert out["status"] == "completed" and out["aggregates"]["done"] == 4
        runs = (await bridge.http.get(f"/v1/campaigns/{cid}/runs", headers=bridge.acme)).json()
        assert [r["end_reason"] for r in runs["runs"]] == ["paused", "every number is done"]


async def test_calling_window(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    closed = {
        "start": (now + timedelta(hours=2)).strftime("%H:%M"),
        "end": (now + timedelta(hours=3)).strftime("%H:%M"),
        "timezone": "UTC",
    }
    async with running(tmp_path, **SLOW) as bridge:
        cid = (await create(bridge, window=closed))["id"]
        await post(bridge, f"/v1/campaigns/{cid}/start")
        await tick(bridge)
        assert bridge.rest.calls == {}  # outside the window
        wide = {"start": "00:00", "end": "23:59", "timezone": "UTC"}
        patched = await bridge.http.patch(
            f"/v1/campaigns/{cid}",
            json={"window": wide, "name": "renewals (Q4)"},
            headers=bridge.acme,
        )
        assert patched.status_code == 200 and patched.json()["name"] == "renewals (Q4)"
        await tick(bridge)
        assert len(bridge.rest.calls) == 1


def test_window_rules() -> None:
    paris = CallingWindow.parse({"start": "09:00", "end": "18:00", "timezone": "Europe/Paris"})
    monday_noon_paris = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # 12:00 in Paris
    assert paris.contains(monday_noon_paris)
    assert not paris.contains(monday_noon_paris + timedelta(hours=8))
    weekdays = CallingWindow.parse({"start": "09:00", "end": "18:00", "days": [1, 2, 3, 4, 5]})
    assert not weekdays.contains(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))  # a Sunday
    night = CallingWindow.parse({"start": "22:00", "end": "02:00", "days": [5]})  # Fri night
    assert night.contains(datetime(2026, 11, 27, 23, 0, tzinfo=UTC))  # Friday 23:00
    assert night.contains(datetime(2026, 11, 28, 1, 0, tzinfo=UTC))  # Saturday 01:00
    assert not night.contains(datetime(2026, 11, 28, 23, 0, tzinfo=UTC))  # Saturday 23:00
    for bad in ({"start": "09:00", "end": "09:00"}, {"start": "9", "end": "10:00"}):
        with pytest.raises(ValueError, match=r"same time|isoformat"):
            CallingWindow.parse(bad)


async def test_refusals_and_tenancy(tmp_path: Path) -> None:
    async with running(tmp_path, **SLOW) as bridge:
        http = bridge.http
        bad_agent = await http.post(
            "/v1/campaigns",
            json={"name": "x", "agent": "nobody", "numbers": NUMBERS[:1]},
            headers=bridge.acme,
        )
        assert bad_agent.status_code == 422
        bad_number = await http.post(
            "/v1/campaigns",
            json={"name": "x", "agent": "caller", "numbers": ["555"]},
            headers=bridge.acme,
        )
        assert bad_number.status_code == 422
        bad_window = await http.post(
            "/v1/campaigns",
            json={
                "name": "x",
                "agent": "caller",
                "numbers": NUMBERS[:1],
                "window": {"start": "09:00", "end": "10:00", "timezone": "Mars/Olympus"},
            },
            headers=bridge.acme,
        )
        assert bad_window.status_code == 422
        cid = (await create(bridge))["id"]
        other = bearer(await api_key(bridge.app, scope="write"))
        assert (await http.get(f"/v1/campaigns/{cid}", headers=other)).status_code == 404
        assert (await http.post(f"/v1/campaigns/{cid}/start", headers=other)).status_code == 404
        assert (await http.get("/v1/campaigns", headers=other)).json()["campaigns"] == []
        reader = bearer(await api_key(bridge.app, org="acme", scope="read"))
        assert (await http.post(f"/v1/campaigns/{cid}/start", headers=reader)).status_code == 403
        canceled = await post(bridge, f"/v1/campaigns/{cid}/cancel")
        assert canceled.json()["status"] == "canceled"
        assert canceled.json()["aggregates"]["skipped"] == 4
        assert (await post(bridge, f"/v1/campaigns/{cid}/start")).status_code == 409
