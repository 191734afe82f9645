"""Twilio's voice, status and stream-status webhooks, driven the way Twilio drives them.

A fake Twilio (``tests/fakes/twilio_voice.py``) signs every request with the ``twilio`` package's
``RequestValidator`` over the bridge's public URL, obeys the TwiML it gets back, and opens the
media stream with the simulator's Twilio caller — the whole path of an inbound phone call.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect

from bridge.api.app import create_app
from bridge.config import Settings
from bridge.runtime.call import STREAM_TOKEN_PURPOSE
from bridge.simulate.caller import TwilioCaller
from tests.auth import SECRET_KEY, api_key, bearer
from tests.fakes.twilio_voice import FakeTwilio, attributes, new_sid, stream_of, verbs
from tests.servers import serve
from tests.waiting import until

PUBLIC = "https://bridge.example.com"
ACME_TOKEN = "acme-auth-token-0123456789abcdef"
DEFAULT_TOKEN = "default-auth-token-fedcba9876543210"
ACME_NUMBER = "+15550001111"
CALLER = "+15557654321"

AGENT = """
    engine = "pipeline"
    organization = "{org}"
    instructions = "A scripted receptionist."
    initial_message = "Hello, you have reached {org}."

    [dialog]
    fallback = "Sorry, I did not catch that."

    [[dialog.intents]]
    name = "bye"
    examples = ["goodbye"]
    reply = "Goodbye."
    end_call = true
"""


@dataclass
class Bridge:
    app: Any
    http: httpx.AsyncClient
    acme: dict[str, str]  # headers with acme's admin key
    twilio: FakeTwilio  # acme's Twilio account

    async def flush(self) -> None:
        await self.app.state.services.journal.flush()

    async def call(self, call_id: str) -> dict[str, Any]:
        await self.flush()
        response = await self.http.get(f"/v1/calls/{call_id}", headers=self.acme)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def calls(self) -> list[dict[str, Any]]:
        await self.flush()
        response = await self.http.get("/v1/calls", headers=self.acme)
        return list(response.json()["calls"])


def write_agents(root: Path) -> tuple[Path, Path]:
    agents, prompts = root / "agents", root / "prompts"
    agents.mkdir()
    prompts.mkdir()
    for name, org in (("front", "default"), ("acme-bot", "acme"), ("acme-sales", "acme")):
        (agents / f"{name}.toml").write_text(textwrap.dedent(AGENT.format(org=org)))
    return agents, prompts


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with run(tmp_path, public_url=PUBLIC) as running:
        yield running


def run(tmp_path: Path, **overrides: Any) -> Any:
    import contextlib

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[Bridge]:
        agents, prompts = write_agents(tmp_path)
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}",
            agents_dir=agents,
            prompts_dir=prompts,
            default_agent="front",
            secret_keys=(SECRET_KEY,),
            twilio_auth_token=DEFAULT_TOKEN,
            **overrides,
        )
        app = create_app(settings, env={})
        async with (
            serve(app) as hostport,
            httpx.AsyncClient(base_url=f"http://{hostport}", timeout=10) as http,
        ):
            acme = bearer(await api_key(app, org="acme"))
            twilio = FakeTwilio(http, ACME_TOKEN, public_base=PUBLIC)
            put = await http.put(
                "/v1/credentials/twilio",
                json={"account_sid": twilio.account_sid, "auth_token": ACME_TOKEN},
                headers=acme,
            )
            assert put.status_code == 201, put.text
            number = {"number": ACME_NUMBER, "inbound_agent": "acme-bot", "label": "main line"}
            added = await http.post("/v1/numbers", json=number, headers=acme)
            assert added.status_code == 201, added.text
            yield Bridge(app, http, acme, twilio)

    return running()


# --- signatures ------------------------------------------------------------------------------


def test_twilio_published_vectors() -> None:
    """Twilio's documented example, through the validator the bridge uses and by hand."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    validator = RequestValidator("12345")
    assert validator.compute_signature(url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert validator.validate(url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    by_hand = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(b"12345", by_hand.encode(), hashlib.sha1).digest()
    assert base64.b64encode(digest).decode() == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    # twilio-python's own test vector (another caller number)
    params |= {"Caller": "+14158675309", "From": "+14158675309"}
    assert validator.compute_signature(url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert not validator.validate(url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


async def test_voice_webhook_answers_a_stream_to_the_routed_agent(bridge: Bridge) -> None:
    params = bridge.twilio.voice_params(to=ACME_NUMBER, from_=CALLER)
    response = await bridge.twilio.post("/twilio/voice", params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    stream = stream_of(response.text)
    assert stream.url == "wss://bridge.example.com/twilio/media"
    assert stream.status_callback == "https://bridge.example.com/twilio/stream-status"
    assert attributes(response.text, "./Connect/Stream")["statusCallbackMethod"] == "POST"
    call_id = stream.parameters["call_id"]
    assert stream.parameters["agent"] == "acme-bot"
    assert stream.parameters["from"] == CALLER and stream.parameters["to"] == ACME_NUMBER
    token = stream.parameters["callbridge_token"]
    payload = bridge.app.state.secrets.verify(STREAM_TOKEN_PURPOSE, token, time.time())
    assert payload == f"{call_id}:acme"
    call = await bridge.call(call_id)
    assert call["status"] == "ringing"
    assert call["agent"] == "acme-bot" and call["carrier"] == "twilio"
    assert call["call_sid"] == params["CallSid"] and call["direction"] == "inbound"
    assert call["from_number"] == CALLER and call["to_number"] == ACME_NUMBER
    assert "callbridge_token" not in call["context"]


async def test_routing_rules_pick_agent_and_context(bridge: Bridge) -> None:
    http, acme = bridge.http, bridge.acme
    rules = [
        {"number": ACME_NUMBER, "agent": "acme-sales", "caller_prefix": "+4420", "priority": 1},
        {"number": ACME_NUMBER, "agent": "acme-bot", "context": {"tier": "gold"}, "priority": 5},
    ]
    for rule in rules:
        assert (await http.post("/v1/routing-rules", json=rule, headers=acme)).status_code == 201

    async def routed(caller: str) -> dict[str, str]:
        params = bridge.twilio.voice_params(to=ACME_NUMBER, from_=caller)
        response = await bridge.twilio.post("/twilio/voice", params)
        return stream_of(response.text).parameters

    london = await routed("+442079460000")
    assert london["agent"] == "acme-sales" and "tier" not in london
    other = await routed(CALLER)
    assert other["agent"] == "acme-bot" and other["tier"] == "gold"


@pytest.mark.parametrize(
    "tamper",
    ["none", "wrong-token", "other-url", "changed-param", "http-scheme"],
)
async def test_bad_signatures_are_403_and_journal_nothing(bridge: Bridge, tamper: str) -> None:
    twilio = bridge.twilio
    params = twilio.voice_params(to=ACME_NUMBER, from_=CALLER)
    url = PUBLIC + "/twilio/voice"
    signature = {
        "none": "",
        "wrong-token": RequestValidator("not-the-token").compute_signature(url, params),
        "other-url": twilio.sign(PUBLIC + "/twilio/other", params),
        "changed-param": twilio.sign(url, {**params, "From": "+15550000000"}),
        "http-scheme": twilio.sign("http://bridge.example.com/twilio/voice", params),
    }[tamper]
    headers = {"X-Twilio-Signature": signature} if signature else {}
    response = await bridge.http.post("/twilio/voice", data=params, headers=headers)
    assert response.status_code == 403
    assert response.json() == {"detail": "invalid X-Twilio-Signature"}
    assert await bridge.calls() == []


async def test_without_public_url_the_proxy_headers_give_the_signed_url(tmp_path: Path) -> None:
    async with run(tmp_path) as bridge:
        twilio = bridge.twilio
        params = twilio.voice_params(to=ACME_NUMBER, from_=CALLER)
        proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bridge.example.com"}
        response = await twilio.post("/twilio/voice", params, headers=proxied)
        assert response.status_code == 200, response.text
        assert stream_of(response.text).url == "wss://bridge.example.com/twilio/media"
        # the same signature without the proxy's headers is for another URL
        response = await twilio.post("/twilio/voice", params)
        assert response.status_code == 403


async def test_numbers_that_cannot_take_the_call_are_rejected(bridge: Bridge) -> None:
    http, acme, twilio = bridge.http, bridge.acme, bridge.twilio
    # not attached anywhere: checked against the default account's token, rejected, no journal
    default = FakeTwilio(http, DEFAULT_TOKEN, public_base=PUBLIC)
    response = await default.post(
        "/twilio/voice", default.voice_params(to="+15559990000", from_=CALLER)
    )
    assert response.status_code == 200 and verbs(response.text) == ["Reject"]
    assert await bridge.calls() == []
    # ... and an unknown number is not a way around the signature
    forged = await http.post(
        "/twilio/voice", data=twilio.voice_params(to="+15559990000", from_=CALLER)
    )
    assert forged.status_code == 403

    (number,) = (await http.get("/v1/numbers", headers=acme)).json()["numbers"]
    reasons = []
    for change, reason in (
        ({"active": False}, f"number {ACME_NUMBER} is inactive"),
        ({"active": True, "outbound_only": True}, f"number {ACME_NUMBER} is outbound-only"),
        ({"outbound_only": False, "inbound_agent": None}, f"no agent answers {ACME_NUMBER}"),
    ):
        patched = await http.patch(f"/v1/numbers/{number['id']}", json=change, headers=acme)
        assert patched.status_code == 200, patched.text
        response = await twilio.post(
            "/twilio/voice", twilio.voice_params(to=ACME_NUMBER, from_=CALLER)
        )
        assert response.status_code == 200
        assert verbs(response.text) == ["Reject"]
        reasons.append(reason)
    calls = await bridge.calls()
    assert sorted(c["end_reason"] for c in calls) == sorted(reasons)
    assert {c["status"] for c in calls} == {"rejected"}


async def test_status_callbacks_follow_a_call_that_never_streamed(bridge: Bridge) -> None:
    twilio = bridge.twilio
    params = twilio.voice_params(to=ACME_NUMBER, from_=CALLER)
    call_id = stream_of((await twilio.post("/twilio/voice", params)).text).parameters["call_id"]
    sid = params["CallSid"]
    await bridge.flush()
    bridge.app.state.services.journal.feed._orgs.clear()  # as on another worker: org unknown
    events_url = twilio.loopback(PUBLIC + "/v1/events").replace("http", "ws", 1)
    async with connect(events_url, additional_headers=bridge.acme) as events:
        await asyncio.sleep(0.1)
        assert (await twilio.status(sid, "in-progress")).status_code == 204
        assert (await bridge.call(call_id))["status"] == "in-progress"
        assert (await twilio.status(sid, "canceled", CallDuration="0")).status_code == 204
        seen = [json.loads(await asyncio.wait_for(events.recv(), 5)) for _ in range(4)]
    assert [(m["type"], m.get("status") or m.get("kind")) for m in seen] == [
        ("event", "carrier_status"),
        ("status", "in-progress"),
        ("event", "carrier_status"),
        ("status", "canceled"),
    ]
    assert {m["call_id"] for m in seen} == {call_id}
    call = await bridge.call(call_id)
    assert call["status"] == "canceled" and call["end_reason"] == "twilio: canceled"
    assert call["ended_at"] is not None
    statuses = [e["data"]["status"] for e in call["events"] if e["kind"] == "carrier_status"]
    assert statuses == ["in-progress", "canceled"]
    # a late "completed" does not overwrite how it ended
    assert (await twilio.status(sid, "completed")).status_code == 204
    assert (await bridge.call(call_id))["status"] == "canceled"


async def test_callbacks_for_unknown_calls_and_bad_signatures(bridge: Bridge) -> None:
    twilio = bridge.twilio
    assert (await twilio.status(new_sid("CA"), "completed")).status_code == 404
    params = twilio.voice_params(to=ACME_NUMBER, from_=CALLER)
    await twilio.post("/twilio/voice", params)
    bad = await bridge.http.post(
        "/twilio/status",
        data={"CallSid": params["CallSid"], "CallStatus": "completed"},
        headers={"X-Twilio-Signature": "AAAA"},
    )
    assert bad.status_code == 403


async def test_inbound_call_end_to_end(bridge: Bridge) -> None:
    """Webhook → TwiML → the media stream joins the journaled call → agent speaks → hang-up."""
    twilio = bridge.twilio
    params = twilio.voice_params(to=ACME_NUMBER, from_=CALLER)
    stream = stream_of((await twilio.post("/twilio/voice", params)).text)
    call_id = stream.parameters["call_id"]
    caller = TwilioCaller(
        twilio.loopback(stream.url),
        custom_parameters=stream.parameters,
        call_sid=params["CallSid"],
        account_sid=twilio.account_sid,
    )
    async with caller.connect():
        await caller.wait_for_agent_audio(min_bytes=8000, timeout=20)
        started = await twilio.stream_status(params["CallSid"], caller.stream_sid, "stream-started")
        assert started.status_code == 204
        live = await bridge.call(call_id)
        assert live["status"] == "in-progress" and live["stream_sid"] == caller.stream_sid
        await caller.wait_until_quiet(quiet_s=0.6, timeout=20)
        await caller.hang_up()
    await twilio.stream_status(params["CallSid"], caller.stream_sid, "stream-stopped")
    await until(lambda: call_id not in bridge.app.state.services.live_calls, 10, "call end")
    await twilio.status(params["CallSid"], "completed", CallDuration="4")
    call = await bridge.call(call_id)
    assert call["status"] == "completed" and call["ended_at"] is not None
    assert call["agent"] == "acme-bot"
    assert call["transcript"][0]["text"] == "Hello, you have reached acme."
    kinds = [e["kind"] for e in call["events"]]
    assert kinds.count("stream_status") == 2 and "carrier_status" in kinds
    assert [c["id"] for c in await bridge.calls()] == [call_id]  # one call, not two


@pytest.mark.parametrize("token", ["forged", "expired"])
async def test_a_stream_without_a_valid_token_is_a_call_of_its_own(
    bridge: Bridge, token: str
) -> None:
    twilio = bridge.twilio
    params = twilio.voice_params(to=ACME_NUMBER, from_=CALLER)
    stream = stream_of((await twilio.post("/twilio/voice", params)).text)
    call_id = stream.parameters["call_id"]
    secrets = bridge.app.state.secrets
    stream.parameters["callbridge_token"] = (
        stream.parameters["callbridge_token"][:-4] + "AAAA"
        if token == "forged"
        else secrets.sign(STREAM_TOKEN_PURPOSE, f"{call_id}:acme", int(time.time()) - 1)
    )
    caller = TwilioCaller(twilio.loopback(stream.url), custom_parameters=stream.parameters)
    async with caller.connect():
        await until(caller.closed_by_bridge.is_set, 10, "the bridge ending the stream")
    await until(lambda: not bridge.app.state.services.live_calls, 10, "call end")
    assert (await bridge.call(call_id))["status"] == "ringing"  # untouched
    assert len(await bridge.calls()) == 1
    # An ordinary stream of the default organization, which has no agent "acme-bot": naming
    # another organization's agent does not reach it.
    default = bearer(await api_key(bridge.app))
    (other,) = (await bridge.http.get("/v1/calls", headers=default)).json()["calls"]
    assert other["id"] != call_id and other["status"] == "failed"
    assert other["end_reason"] == "unknown agent 'acme-bot'"
