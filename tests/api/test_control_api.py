"""The control plane over HTTP: API keys (401/403/429), tenant isolation, numbers, routing rules
and encrypted credentials, against the real app (create_app) served on loopback."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from bridge.api.app import create_app
from bridge.config import Settings
from bridge.journal.ids import new_call_id
from bridge.secrets import SecretBox, new_api_key
from tests.auth import SECRET_KEY, api_key, bearer
from tests.servers import serve

DIALOG = """
    engine = "pipeline"
    instructions = "A scripted stand-in."
    initial_message = "Hello, how can I help?"

    [dialog]
    fallback = "Sorry, I did not catch that."

    [[dialog.intents]]
    name = "bye"
    examples = ["goodbye"]
    reply = "Goodbye."
    end_call = true
"""
AGENTS = {
    "front": DIALOG,
    "acme-bot": 'organization = "acme"\n' + DIALOG,
    "globex-bot": 'organization = "globex"\n' + DIALOG,
}
ACME_MAIN = "+15550001000"
ACME_SALES = "+15550001001"
GLOBEX_MAIN = "+15550002000"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "tok-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


@dataclass
class Bridge:
    """A running app and a client for it (no key: each request names its own)."""

    app: Any
    http: httpx.AsyncClient
    bodies: list[str] = field(default_factory=list)
    """Every response body the client has received."""

    async def key(self, org: str = "default", scope: str = "admin") -> dict[str, str]:
        """The headers of a new key of ``org`` with ``scope``."""
        return bearer(await api_key(self.app, org, scope))


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **overrides: Any) -> AsyncIterator[Bridge]:
    agents_dir = tmp_path / "agents"
    prompts_dir = tmp_path / "prompts"
    agents_dir.mkdir(exist_ok=True)
    prompts_dir.mkdir(exist_ok=True)
    for name, body in AGENTS.items():
        (agents_dir / f"{name}.toml").write_text(textwrap.dedent(body))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}",
        agents_dir=agents_dir,
        prompts_dir=prompts_dir,
        default_agent="front",
        secret_keys=(SECRET_KEY,),
        **overrides,
    )
    app = create_app(settings, env={})
    bodies: list[str] = []

    async def keep_body(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.text)

    async with (
        serve(app) as hostport,
        httpx.AsyncClient(
            base_url=f"http://{hostport}", timeout=10, event_hooks={"response": [keep_body]}
        ) as http,
    ):
        yield Bridge(app, http, bodies)


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running(tmp_path) as running_bridge:
        yield running_bridge


def detail(response: httpx.Response, status: int) -> str:
    """The response's status is ``status`` and its body ``{"detail": <str>}``: that string.
    A 422 always has FastAPI's validation shape (a list of ``{loc, msg, type}``): its messages."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["detail"], body
    value = body["detail"]
    if status == 422:
        assert isinstance(value, list) and value, body
        assert all({"loc", "msg", "type"} <= set(item) for item in value), body
        return "; ".join(str(item["msg"]) for item in value)
    assert isinstance(value, str) and value
    return str(value)


def invalid(response: httpx.Response) -> None:
    """A 422: FastAPI's validation list (ours too), under ``detail``."""
    detail(response, 422)


def unauthorized(response: httpx.Response) -> None:
    detail(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


# --- authentication and scopes -------------------------------------------------------------


async def test_requests_without_a_valid_key_are_401(bridge: Bridge) -> None:
    http = bridge.http
    unauthorized(await http.get("/v1/numbers"))
    unauthorized(await http.get("/v1/numbers", headers={"Authorization": "Bearer garbage"}))
    unauthorized(await http.get("/v1/calls", headers={"Authorization": "Basic dXNlcjpwYXNz"}))
    unauthorized(await http.get("/v1/agents", headers=bearer(new_api_key())))  # well-formed
    unauthorized(await http.post("/v1/numbers", json={"number": ACME_MAIN}))
    unauthorized(await http.put("/v1/credentials/openai", json={"api_key": "x" * 20}))
    assert (await http.get("/healthz")).status_code == 200  # health needs no key


async def test_a_revoked_key_is_refused_at_once(bridge: Bridge) -> None:
    http = bridge.http
    admin = await bridge.key()
    created = await http.post("/v1/keys", json={"name": "ci", "scope": "read"}, headers=admin)
    assert created.status_code == 201
    doomed = bearer(created.json()["key"])
    assert (await http.get("/v1/numbers", headers=doomed)).status_code == 200  # now cached

    revoked = await http.delete(f"/v1/keys/{created.json()['id']}", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert "key" not in revoked.json()

    unauthorized(await http.get("/v1/numbers", headers=doomed))
    listed = (await http.get("/v1/keys", headers=admin)).json()["keys"]
    assert {k["id"]: k["revoked_at"] is not None for k in listed}[created.json()["id"]] is True
    assert (await http.get("/v1/numbers", headers=admin)).status_code == 200
    detail(await http.delete(f"/v1/keys/{new_call_id()}", headers=admin), 404)


async def test_another_organizations_key_cannot_be_revoked(bridge: Bridge) -> None:
    http = bridge.http
    acme = await bridge.key("acme")
    globex = await bridge.key("globex")
    globex_keys = (await http.get("/v1/keys", headers=globex)).json()["keys"]
    assert len(globex_keys) == 1
    detail(await http.delete(f"/v1/keys/{globex_keys[0]['id']}", headers=acme), 404)
    assert (await http.get("/v1/keys", headers=globex)).status_code == 200  # still valid


async def test_scopes_nest_read_write_admin(bridge: Bridge) -> None:
    http = bridge.http
    read, write, admin = [await bridge.key("acme", scope) for scope in ("read", "write", "admin")]
    number = {"number": ACME_MAIN, "inbound_agent": "acme-bot"}

    for path in ("/v1/numbers", "/v1/routing-rules", "/v1/credentials", "/v1/calls"):
        assert (await http.get(path, headers=read)).status_code == 200, path
    assert (await http.get("/v1/agents", headers=read)).status_code == 200
    message = detail(await http.post("/v1/numbers", json=number, headers=read), 403)
    assert "read" in message and "write" in message
    detail(await http.get("/v1/keys", headers=read), 403)
    detail(await http.get("/v1/keys", headers=write), 403)

    assert (await http.post("/v1/numbers", json=number, headers=write)).status_code == 201
    rule = {"number": ACME_MAIN, "agent": "acme-bot"}
    message = detail(await http.post("/v1/routing-rules", json=rule, headers=write), 403)
    assert "admin" in message
    credential = {"api_key": "sk-" + "a" * 30}
    detail(await http.put("/v1/credentials/openai", json=credential, headers=write), 403)
    detail(await http.post("/v1/keys", json={"name": "x"}, headers=write), 403)

    assert (await http.post("/v1/routing-rules", json=rule, headers=admin)).status_code == 201
    put = await http.put("/v1/credentials/openai", json=credential, headers=admin)
    assert put.status_code == 201
    assert (await http.get("/v1/keys", headers=admin)).status_code == 200


async def test_rate_limit_is_per_key(tmp_path: Path) -> None:
    async with running(tmp_path, rate_limit_per_minute=5) as bridge:
        http = bridge.http
        busy = await bridge.key("acme", "read")
        other = await bridge.key("acme", "read")
        for _ in range(5):
            assert (await http.get("/v1/numbers", headers=busy)).status_code == 200
        limited = await http.get("/v1/numbers", headers=busy)
        assert "5 requests per minute" in detail(limited, 429)
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 13
        detail(await http.get("/v1/calls", headers=busy), 429)  # every route, same bucket

        assert (await http.get("/v1/numbers", headers=other)).status_code == 200
        # Requests without a valid key are refused before they spend anyone's budget.
        unauthorized(await http.get("/v1/numbers"))
        assert (await http.get("/v1/numbers", headers=other)).status_code == 200


# --- the keys API --------------------------------------------------------------------------


async def test_a_new_key_is_shown_once(bridge: Bridge) -> None:
    http = bridge.http
    admin = await bridge.key()
    response = await http.post("/v1/keys", json={"name": "deploy", "scope": "write"}, headers=admin)
    assert response.status_code == 201
    created = response.json()
    key = created["key"]
    assert key.startswith("cb_") and len(key) == 43
    assert created["last4"] == key[-4:]
    assert (created["name"], created["scope"], created["revoked_at"]) == ("deploy", "write", None)

    listing = await http.get("/v1/keys", headers=admin)
    assert listing.status_code == 200
    assert key not in listing.text
    keys = {k["id"]: k for k in listing.json()["keys"]}
    assert "key" not in keys[created["id"]]
    assert keys[created["id"]]["last4"] == key[-4:]
    assert keys[created["id"]]["scope"] == "write"

    # The new key works with its scope, in its organization (the default one).
    number = {"number": ACME_MAIN, "inbound_agent": "front"}
    assert (await http.post("/v1/numbers", json=number, headers=bearer(key))).status_code == 201
    detail(await http.get("/v1/keys", headers=bearer(key)), 403)

    invalid(await http.post("/v1/keys", json={"name": "x", "scope": "root"}, headers=admin))
    invalid(await http.post("/v1/keys", json={"name": ""}, headers=admin))
    default_scope = await http.post("/v1/keys", json={"name": "reader"}, headers=admin)
    assert default_scope.json()["scope"] == "read"


async def test_keys_are_listed_per_organization(bridge: Bridge) -> None:
    http = bridge.http
    acme = await bridge.key("acme")
    made = (await http.post("/v1/keys", json={"name": "more"}, headers=acme)).json()
    globex = await bridge.key("globex")
    acme_ids = {k["id"] for k in (await http.get("/v1/keys", headers=acme)).json()["keys"]}
    globex_ids = {k["id"] for k in (await http.get("/v1/keys", headers=globex)).json()["keys"]}
    assert made["id"] in acme_ids and len(acme_ids) == 2
    assert len(globex_ids) == 1 and not acme_ids & globex_ids


# --- tenant isolation ----------------------------------------------------------------------


async def test_organizations_never_see_each_other(bridge: Bridge) -> None:
    http = bridge.http
    acme = await bridge.key("acme")
    globex = await bridge.key("globex")

    # Numbers.
    acme_number = await http.post(
        "/v1/numbers", json={"number": ACME_MAIN, "inbound_agent": "acme-bot"}, headers=acme
    )
    assert acme_number.status_code == 201
    acme_id = acme_number.json()["id"]
    globex_number = await http.post(
        "/v1/numbers", json={"number": GLOBEX_MAIN, "inbound_agent": "globex-bot"}, headers=globex
    )
    assert globex_number.status_code == 201
    globex_id = globex_number.json()["id"]

    acme_list = (await http.get("/v1/numbers", headers=acme)).json()["numbers"]
    globex_list = (await http.get("/v1/numbers", headers=globex)).json()["numbers"]
    assert [n["number"] for n in acme_list] == [ACME_MAIN]
    assert [n["number"] for n in globex_list] == [GLOBEX_MAIN]
    detail(await http.get(f"/v1/numbers/{acme_id}", headers=globex), 404)
    detail(await http.patch(f"/v1/numbers/{acme_id}", json={"label": "x"}, headers=globex), 404)
    detail(await http.delete(f"/v1/numbers/{acme_id}", headers=globex), 404)
    detail(await http.get(f"/v1/numbers/{globex_id}", headers=acme), 404)
    still = await http.get(f"/v1/numbers/{acme_id}", headers=acme)
    assert still.status_code == 200 and still.json()["label"] is None

    # Agents.
    agents = {}
    for org, headers in (("acme", acme), ("globex", globex), ("default", await bridge.key())):
        response = await http.get("/v1/agents", headers=headers)
        assert response.status_code == 200
        agents[org] = [(a["name"], a["default"]) for a in response.json()["agents"]]
    assert agents == {
        "acme": [("acme-bot", False)],
        "globex": [("globex-bot", False)],
        "default": [("front", True)],
    }
    for agent in ("globex-bot", "front"):
        stolen = {"number": ACME_SALES, "inbound_agent": agent}
        invalid(await http.post("/v1/numbers", json=stolen, headers=acme))
        patch = {"inbound_agent": agent}
        invalid(await http.patch(f"/v1/numbers/{acme_id}", json=patch, headers=acme))
    acme_list = (await http.get("/v1/numbers", headers=acme)).json()["numbers"]
    assert [(n["number"], n["inbound_agent"]) for n in acme_list] == [(ACME_MAIN, "acme-bot")]

    # Routing rules.
    rule = await http.post(
        "/v1/routing-rules", json={"number": ACME_MAIN, "agent": "acme-bot"}, headers=acme
    )
    assert rule.status_code == 201
    rule_id = rule.json()["id"]
    assert (await http.get("/v1/routing-rules", headers=globex)).json() == {"rules": []}
    filtered = await http.get("/v1/routing-rules", params={"number": ACME_MAIN}, headers=globex)
    assert filtered.json() == {"rules": []}
    detail(await http.get(f"/v1/routing-rules/{rule_id}", headers=globex), 404)
    patch = {"priority": 1}
    detail(await http.patch(f"/v1/routing-rules/{rule_id}", json=patch, headers=globex), 404)
    detail(await http.delete(f"/v1/routing-rules/{rule_id}", headers=globex), 404)
    # globex can route neither acme's number nor to acme's agent.
    theirs = {"number": ACME_MAIN, "agent": "globex-bot"}
    invalid(await http.post("/v1/routing-rules", json=theirs, headers=globex))
    to_acme = {"number": GLOBEX_MAIN, "agent": "acme-bot"}
    invalid(await http.post("/v1/routing-rules", json=to_acme, headers=globex))
    rules = (await http.get("/v1/routing-rules", headers=acme)).json()["rules"]
    assert [(r["id"], r["priority"]) for r in rules] == [(rule_id, 100)]

    # Credentials.
    put = await http.put("/v1/credentials/openai", json={"api_key": "sk-" + "q" * 30}, headers=acme)
    assert put.status_code == 201
    assert (await http.get("/v1/credentials", headers=globex)).json() == {"credentials": []}
    detail(await http.delete("/v1/credentials/openai", headers=globex), 404)
    acme_credentials = (await http.get("/v1/credentials", headers=acme)).json()["credentials"]
    assert [c["provider"] for c in acme_credentials] == ["openai"]

    # Calls.
    journal = bridge.app.state.journal
    acme_call, globex_call, default_call = new_call_id(), new_call_id(), new_call_id()
    await journal.create_call(acme_call, carrier="twilio", started_at=T0, org_id="acme")
    await journal.create_call(globex_call, carrier="twilio", started_at=T0, org_id="globex")
    await journal.create_call(default_call, carrier="webrtc", started_at=T0)
    calls = {}
    for org, headers in (("acme", acme), ("globex", globex), ("default", await bridge.key())):
        response = await http.get("/v1/calls", headers=headers)
        assert response.status_code == 200
        calls[org] = [call["id"] for call in response.json()["calls"]]
    assert calls == {"acme": [acme_call], "globex": [globex_call], "default": [default_call]}
    own = await http.get(f"/v1/calls/{acme_call}", headers=acme)
    assert own.status_code == 200 and own.json()["id"] == acme_call
    assert detail(await http.get(f"/v1/calls/{acme_call}", headers=globex), 404) == (
        "call not found"
    )
    detail(await http.get(f"/v1/calls/{globex_call}", headers=acme), 404)
    detail(await http.get(f"/v1/calls/{default_call}", headers=acme), 404)
    detail(await http.get(f"/v1/calls/{acme_call}/live", headers=globex), 404)
    listed = await http.get("/v1/calls", params={"call_sid": "x"}, headers=acme)
    assert listed.json()["calls"] == []


# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["15550001000", "+05550001000", "+123456", "+1234567890123456", "+1555-000-1000", ""],
)
async def test_a_number_must_be_e164(bridge: Bridge, number: str) -> None:
    acme = await bridge.key("acme", "write")
    invalid(await bridge.http.post("/v1/numbers", json={"number": number}, headers=acme))
    assert (await bridge.http.get("/v1/numbers", headers=acme)).json() == {"numbers": []}


async def test_number_import_and_changes(bridge: Bridge) -> None:
    http = bridge.http
    acme = await bridge.key("acme", "write")
    globex = await bridge.key("globex", "write")

    response = await http.post(
        "/v1/numbers",
        json={"number": ACME_MAIN, "provider_sid": "PN123", "label": "Main"},
        headers=acme,
    )
    assert response.status_code == 201
    number = response.json()
    assert {k: number[k] for k in number if k not in {"id", "created_at", "updated_at"}} == {
        "number": ACME_MAIN,
        "provider": "twilio",
        "provider_sid": "PN123",
        "label": "Main",
        "active": True,
        "inbound_agent": None,
        "outbound_only": False,
    }
    number_id = number["id"]

    message = detail(await http.post("/v1/numbers", json={"number": ACME_MAIN}, headers=acme), 409)
    assert ACME_MAIN in message
    detail(await http.post("/v1/numbers", json={"number": ACME_MAIN}, headers=globex), 409)
    telnyx = {"number": ACME_SALES, "provider": "telnyx"}
    invalid(await http.post("/v1/numbers", json=telnyx, headers=acme))
    unknown = {"number": ACME_SALES, "inbound_agent": "nobody"}
    assert "nobody" in detail(await http.post("/v1/numbers", json=unknown, headers=acme), 422)
    invalid(await http.post("/v1/numbers", json={"number": ACME_SALES, "x": 1}, headers=acme))

    for change in (
        {"label": "Front desk"},
        {"active": False},
        {"inbound_agent": "acme-bot"},
        {"outbound_only": True},
    ):
        patched = await http.patch(f"/v1/numbers/{number_id}", json=change, headers=acme)
        assert patched.status_code == 200, patched.text
        assert patched.json() | change == patched.json()
    got = (await http.get(f"/v1/numbers/{number_id}", headers=acme)).json()
    assert (got["label"], got["active"], got["inbound_agent"], got["outbound_only"]) == (
        "Front desk",
        False,
        "acme-bot",
        True,
    )
    assert got["provider_sid"] == "PN123"  # untouched by the patches
    assert datetime.fromisoformat(got["updated_at"]) >= datetime.fromisoformat(got["created_at"])

    invalid(await http.patch(f"/v1/numbers/{number_id}", json={"inbound_agent": "x"}, headers=acme))
    invalid(await http.patch(f"/v1/numbers/{number_id}", json={"active": None}, headers=acme))
    invalid(await http.patch(f"/v1/numbers/{number_id}", json={"number": "+1"}, headers=acme))
    cleared = await http.patch(
        f"/v1/numbers/{number_id}", json={"inbound_agent": None, "label": None}, headers=acme
    )
    assert cleared.status_code == 200
    assert (cleared.json()["inbound_agent"], cleared.json()["label"]) == (None, None)
    detail(await http.patch(f"/v1/numbers/{new_call_id()}", json={}, headers=acme), 404)

    deleted = await http.delete(f"/v1/numbers/{number_id}", headers=acme)
    assert deleted.status_code == 204 and deleted.content == b""
    detail(await http.get(f"/v1/numbers/{number_id}", headers=acme), 404)
    detail(await http.delete(f"/v1/numbers/{number_id}", headers=acme), 404)
    # Detached: another organization may import it now.
    assert (await http.post("/v1/numbers", json={"number": ACME_MAIN}, headers=globex)).is_success


# --- routing rules -------------------------------------------------------------------------


async def test_routing_rules_crud(bridge: Bridge) -> None:
    http = bridge.http
    acme = await bridge.key("acme")
    reader = await bridge.key("acme", "read")
    for number in (ACME_MAIN, ACME_SALES):
        made = await http.post(
            "/v1/numbers", json={"number": number, "inbound_agent": "acme-bot"}, headers=acme
        )
        assert made.status_code == 201

    unattached = {"number": GLOBEX_MAIN, "agent": "acme-bot"}
    assert GLOBEX_MAIN in detail(
        await http.post("/v1/routing-rules", json=unattached, headers=acme), 422
    )
    invalid(
        await http.post("/v1/routing-rules", json={"number": ACME_MAIN, "agent": "x"}, headers=acme)
    )
    bad_prefix = {"number": ACME_MAIN, "agent": "acme-bot", "caller_prefix": "44"}
    invalid(await http.post("/v1/routing-rules", json=bad_prefix, headers=acme))
    negative = {"number": ACME_MAIN, "agent": "acme-bot", "priority": -1}
    invalid(await http.post("/v1/routing-rules", json=negative, headers=acme))

    uk = await http.post(
        "/v1/routing-rules",
        json={
            "number": ACME_MAIN,
            "agent": "acme-bot",
            "caller_prefix": "+44",
            "priority": 10,
            "context": {"region": "uk"},
        },
        headers=acme,
    )
    assert uk.status_code == 201
    uk_rule = uk.json()
    assert (uk_rule["caller_prefix"], uk_rule["priority"], uk_rule["active"]) == ("+44", 10, True)
    assert uk_rule["context"] == {"region": "uk"}
    sales = await http.post(
        "/v1/routing-rules", json={"number": ACME_SALES, "agent": "acme-bot"}, headers=acme
    )
    assert sales.status_code == 201
    sales_id = sales.json()["id"]

    everything = (await http.get("/v1/routing-rules", headers=reader)).json()["rules"]
    assert [r["id"] for r in everything] == [uk_rule["id"], sales_id]
    main_only = await http.get("/v1/routing-rules", params={"number": ACME_MAIN}, headers=reader)
    assert [r["id"] for r in main_only.json()["rules"]] == [uk_rule["id"]]
    invalid(await http.get("/v1/routing-rules", params={"number": "555"}, headers=reader))
    one = await http.get(f"/v1/routing-rules/{uk_rule['id']}", headers=reader)
    assert one.status_code == 200 and one.json() == uk_rule

    control = bridge.app.state.control
    assert await control.route("acme", ACME_MAIN, "+447700900123") == ("acme-bot", {"region": "uk"})

    patched = await http.patch(
        f"/v1/routing-rules/{uk_rule['id']}",
        json={"priority": 5, "active": False, "context": {"region": "gb"}},
        headers=acme,
    )
    assert patched.status_code == 200
    assert (patched.json()["priority"], patched.json()["active"]) == (5, False)
    assert patched.json()["context"] == {"region": "gb"}
    assert patched.json()["caller_prefix"] == "+44"
    # Inactive now: the number's inbound agent answers, without the rule's context.
    assert await control.route("acme", ACME_MAIN, "+447700900123") == ("acme-bot", {})
    rule_path = f"/v1/routing-rules/{uk_rule['id']}"
    invalid(await http.patch(rule_path, json={"agent": None}, headers=acme))
    invalid(await http.patch(rule_path, json={"agent": "globex-bot"}, headers=acme))
    invalid(await http.patch(rule_path, json={"number": ACME_SALES}, headers=acme))
    detail(await http.patch(rule_path, json={"priority": 1}, headers=reader), 403)
    detail(await http.patch(f"/v1/routing-rules/{new_call_id()}", json={}, headers=acme), 404)

    assert (await http.delete(rule_path, headers=acme)).status_code == 204
    detail(await http.get(rule_path, headers=reader), 404)
    detail(await http.delete(rule_path, headers=acme), 404)
    remaining = (await http.get("/v1/routing-rules", headers=reader)).json()["rules"]
    assert [r["id"] for r in remaining] == [sales_id]


# --- credentials ---------------------------------------------------------------------------


async def test_credentials_are_sealed_and_only_hinted(bridge: Bridge) -> None:
    http = bridge.http
    acme = await bridge.key("acme")
    reader = await bridge.key("acme", "read")
    twilio = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}

    first = await http.put("/v1/credentials/twilio", json=twilio, headers=acme)
    assert first.status_code == 201
    assert first.json()["provider"] == "twilio"
    assert first.json()["hints"] == {"account_sid": ACCOUNT_SID[-4:], "auth_token": AUTH_TOKEN[-4:]}

    new_token = "tok-" + "5" * 28 + "WXYZ"
    replaced = await http.put(
        "/v1/credentials/twilio",
        json={"account_sid": ACCOUNT_SID, "auth_token": new_token},
        headers=acme,
    )
    assert replaced.status_code == 200
    assert replaced.json()["hints"]["auth_token"] == "WXYZ"
    assert replaced.json()["created_at"] == first.json()["created_at"]

    listing = await http.get("/v1/credentials", headers=reader)
    assert listing.status_code == 200
    assert [(c["provider"], c["hints"]) for c in listing.json()["credentials"]] == [
        ("twilio", {"account_sid": ACCOUNT_SID[-4:], "auth_token": "WXYZ"})
    ]

    # The database holds the fields sealed; the server's key opens them.
    async with bridge.app.state.journal.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT org_id, provider, sealed FROM credentials"))).all()
    assert [(org, provider) for org, provider, _ in rows] == [("acme", "twilio")]
    sealed = rows[0][2]
    for secret in (ACCOUNT_SID, AUTH_TOKEN, new_token):
        assert secret not in sealed
    assert orjson.loads(SecretBox([SECRET_KEY]).open(sealed)) == {
        "account_sid": ACCOUNT_SID,
        "auth_token": new_token,
    }

    # Wrong fields for the provider, bad values, unknown providers: 422, nothing stored.
    for provider, body in (
        ("twilio", {"api_key": "sk-" + "a" * 30}),
        ("twilio", {"account_sid": ACCOUNT_SID}),
        ("twilio", {"account_sid": "AC123", "auth_token": AUTH_TOKEN}),
        ("twilio", {**twilio, "api_key": "sk-" + "a" * 30}),
        ("openai", {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}),
        ("openai", {"api_key": "short"}),
        ("openai", {}),
        ("openai", {"api_key": "sk-" + "a" * 30, "extra": "x"}),
        ("aws", {"api_key": "sk-" + "a" * 30}),
    ):
        invalid(await http.put(f"/v1/credentials/{provider}", json=body, headers=acme))
    assert len((await http.get("/v1/credentials", headers=reader)).json()["credentials"]) == 1

    deleted = await http.delete("/v1/credentials/twilio", headers=acme)
    assert deleted.status_code == 204 and deleted.content == b""
    detail(await http.delete("/v1/credentials/twilio", headers=acme), 404)
    assert (await http.get("/v1/credentials", headers=reader)).json() == {"credentials": []}
    again = await http.put("/v1/credentials/twilio", json=twilio, headers=acme)
    assert again.status_code == 201  # stored anew

    assert len(bridge.bodies) > 15
    for body in bridge.bodies:
        for secret in (AUTH_TOKEN, new_token, ACCOUNT_SID):
            assert secret not in body
