"""``/v1/webhooks`` over HTTP: create (secret shown once, stored sealed), list, get, change,
delete; scopes; validation; and tenant isolation — another organization's subscription is a
404 for every operation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.journal.webhook_models import WebhookSubscription
from tests.api.test_control_api import detail, invalid
from tests.webhooks.harness import Bridge, running

URL = "https://hooks.example.com/callbridge"


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running(tmp_path) as served:
        yield served


async def test_create_shows_the_secret_once_and_stores_it_sealed(bridge: Bridge) -> None:
    admin = await bridge.key()
    created = await bridge.http.post(
        "/v1/webhooks",
        json={"url": URL, "events": ["call.ended", "call.started", "call.ended"], "agent": "front"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert body["secret_last4"] == secret[-4:]
    assert body["events"] == ["call.ended", "call.started"]  # deduplicated, in order
    assert (body["agent"], body["active"], body["url"]) == ("front", True, URL)
    got = await bridge.http.get(f"/v1/webhooks/{body['id']}", headers=admin)
    assert got.status_code == 200 and "secret" not in got.json()
    listed = await bridge.http.get("/v1/webhooks", headers=await bridge.key(scope="read"))
    assert [w["id"] for w in listed.json()["webhooks"]] == [body["id"]]
    assert secret not in listed.text and secret not in got.text
    async with bridge.app.state.journal.transaction() as tx:
        row = await tx.session.scalar(select(WebhookSubscription))
    assert row is not None and secret not in row.sealed_secret
    assert bridge.app.state.secrets.open(row.sealed_secret).decode() == secret


async def test_change_and_delete(bridge: Bridge) -> None:
    admin = await bridge.key()
    webhook = await bridge.subscribe(URL, agent="front")
    path = f"/v1/webhooks/{webhook['id']}"
    changed = await bridge.http.patch(
        path,
        json={"active": False, "agent": None, "events": ["tool.called"], "description": "ops"},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in ("active", "agent", "events", "description")} == {
        "active": False,
        "agent": None,
        "events": ["tool.called"],
        "description": "ops",
    }
    for field in ("url", "events", "active"):
        assert "cannot be null" in detail(
            await bridge.http.patch(path, json={field: None}, headers=admin), 422
        )
    assert (await bridge.http.delete(path, headers=admin)).status_code == 204
    detail(await bridge.http.get(path, headers=admin), 404)
    detail(await bridge.http.delete(path, headers=admin), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/x", "events": ["call.ended"]},
        {"url": "https://", "events": ["call.ended"]},
        {"url": "https://example.com/a b", "events": ["call.ended"]},
        {"url": "https://example.com:99999/", "events": ["call.ended"]},
        {"url": URL, "events": []},
        {"url": URL, "events": ["call.answered"]},
        {"url": URL, "events": ["call.ended"], "agent": "no-such-agent"},
        {"url": URL, "events": ["call.ended"], "agent": "acme-bot"},  # another organization's
        {"url": URL, "events": ["call.ended"], "secret": "mine"},
        {"events": ["call.ended"]},
    ],
)
async def test_invalid_subscriptions_are_422(bridge: Bridge, body: dict[str, object]) -> None:
    invalid(await bridge.http.post("/v1/webhooks", json=body, headers=await bridge.key()))


async def test_scopes(bridge: Bridge) -> None:
    webhook = await bridge.subscribe(URL)
    path = f"/v1/webhooks/{webhook['id']}"
    writer = await bridge.key(scope="write")
    body = {"url": URL, "events": ["call.ended"]}
    detail(await bridge.http.post("/v1/webhooks", json=body, headers=writer), 403)
    detail(await bridge.http.patch(path, json={"active": False}, headers=writer), 403)
    detail(await bridge.http.delete(path, headers=writer), 403)
    assert (await bridge.http.get(path, headers=writer)).status_code == 200
    assert (await bridge.http.get(f"{path}/deliveries", headers=writer)).status_code == 200
    detail(await bridge.http.get("/v1/webhooks"), 401)


async def test_another_organizations_subscription_is_not_there(bridge: Bridge) -> None:
    acme = await bridge.subscribe(URL, org="acme")
    ours = await bridge.key()  # default organization, admin
    path = f"/v1/webhooks/{acme['id']}"
    detail(await bridge.http.get(path, headers=ours), 404)
    detail(await bridge.http.patch(path, json={"url": "https://evil.example/"}, headers=ours), 404)
    detail(await bridge.http.delete(path, headers=ours), 404)
    detail(await bridge.http.get(f"{path}/deliveries", headers=ours), 404)
    detail(await bridge.http.post(f"{path}/deliveries/1/retry", headers=ours), 404)
    listed = await bridge.http.get("/v1/webhooks", headers=ours)
    assert listed.json() == {"webhooks": []}
    still = await bridge.http.get(path, headers=await bridge.key("acme"))
    assert still.status_code == 200 and still.json()["url"] == URL


async def test_deliveries_page_and_filter(bridge: Bridge) -> None:
    webhook = await bridge.subscribe("http://127.0.0.1:9/hook", events=["transcript.message"])
    call_id = bridge.fake_call(agent="sales", turns=4, end=False)
    await bridge.writer.flush()
    rows = await bridge.deliveries(webhook["id"])
    assert [r["data"]["text"] for r in rows] == ["turn 3", "turn 2", "turn 1", "turn 0"]
    assert {r["call_id"] for r in rows} == {call_id}
    path = f"/v1/webhooks/{webhook['id']}/deliveries"
    reader = await bridge.key(scope="read")
    page = await bridge.http.get(f"{path}?limit=2&before_id={rows[1]['id']}", headers=reader)
    assert [r["data"]["text"] for r in page.json()["deliveries"]] == ["turn 1", "turn 0"]
    none = await bridge.http.get(f"{path}?state=delivered", headers=reader)
    assert none.json() == {"deliveries": []}
    invalid(await bridge.http.get(f"{path}?state=lost", headers=reader))
    detail(await bridge.http.post(f"{path}/999999/retry", headers=await bridge.key()), 404)
