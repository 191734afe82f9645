"""Outbound dials through Twilio's REST API, answering-machine detection, and live call control.

The ``twilio`` package itself talks to a fake ``api.twilio.com`` (an ``httpx`` transport that
checks auth and the form as Twilio does); the fake Twilio then does what Twilio would: signed
status and AMD callbacks, and the media stream the dial's TwiML asks for, opened with the
simulator's Twilio caller — so every action below runs against a live simulated call.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bridge.api.app import create_app
from bridge.audio.g711 import ulaw_to_pcm16
from bridge.config import Settings
from bridge.simulate.caller import TwilioCaller
from tests.auth import SECRET_KEY, api_key, bearer
from tests.fakes.twilio_voice import (
    FakeTwilio,
    FakeTwilioRest,
    RestCall,
    new_sid,
    parse_twiml,
    stream_of,
)
from tests.servers import serve
from tests.waiting import until

PUBLIC = "https://bridge.example.com"
TOKEN = "acme-auth-token-0123456789abcdef"
NUMBER = "+15550001111"
CUSTOMER = "+15557654321"
DESK = "+15550002222"

AGENT = """
    engine = "pipeline"
    organization = "acme"
    instructions = "Calls customers about their order."
    initial_message = "Hello, this is acme calling about your order."
    send_dtmf = true
    {voicemail}

    [transfer]
    targets = {{ desk = "{desk}" }}

    [dialog]
    fallback = "Sorry, I did not catch that."

    [[dialog.intents]]
    name = "transfer"
    examples = ["transfer me to the desk"]
    slots = ["target"]
    tool = "transfer_call"
    reply = "Transferring you now."

    [dialog.slots.target]
    ask = "Where to?"
    values = ["desk"]

    [[dialog.intents]]
    name = "bye"
    examples = ["goodbye"]
    reply = "Goodbye."
    end_call = true
"""
LEAVE_MESSAGE = """
    [voicemail]
    detect = "detect_message_end"
    action = "leave_message"
    message = "Hi {{name}}, this is acme. Please call us back."
"""


@dataclass
class Bridge:
    app: Any
    http: httpx.AsyncClient
    acme: dict[str, str]
    twilio: FakeTwilio
    rest: FakeTwilioRest

    async def call(self, call_id: str) -> dict[str, Any]:
        await self.app.state.services.journal.flush()
        response = await self.http.get(f"/v1/calls/{call_id}", headers=self.acme)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def dial(self, **body: Any) -> httpx.Response:
        return await self.http.post(
            "/v1/calls",
            json={"to": CUSTOMER, "agent": "caller", "context": {"name": "Ada"}, **body},
            headers=self.acme,
        )

    @contextlib.asynccontextmanager
    async def answer(self, call: RestCall) -> AsyncIterator[TwilioCaller]:
        """Twilio's side once the customer picks up: status callback, then the media stream
        the dial's TwiML names."""
        callback = call.one("StatusCallback")
        assert callback is not None and callback.startswith(PUBLIC)
        path = callback.removeprefix(PUBLIC)
        response = await self.twilio.post(
            path,
            {"AccountSid": self.rest.account_sid, "CallSid": call.sid, "CallStatus": "in-progress"},
        )
        assert response.status_code == 204, response.text
        twiml = call.one("Twiml")
        assert twiml is not None
        stream = stream_of(twiml)
        caller = TwilioCaller(
            self.twilio.loopback(stream.url),
            custom_parameters=stream.parameters,
            call_sid=call.sid,
            account_sid=self.rest.account_sid,
        )
        async with caller.connect():
            yield caller

    async def amd(self, call: RestCall, answered_by: str) -> httpx.Response:
        callback = call.one("AsyncAmdStatusCallback")
        assert callback is not None
        params = {
            "AccountSid": self.rest.account_sid,
            "CallSid": call.sid,
            "AnsweredBy": answered_by,
            "MachineDetectionDuration": "2300",
        }
        return await self.twilio.post(callback.removeprefix(PUBLIC), params)


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    voicemail: str = "",
    rest: FakeTwilioRest | None = None,
    **overrides: Any,
) -> AsyncIterator[Bridge]:
    """The bridge on ``tmp_path`` (again on the same journal when called again)."""
    agents, prompts = tmp_path / "agents", tmp_path / "prompts"
    agents.mkdir(exist_ok=True)
    prompts.mkdir(exist_ok=True)
    (agents / "caller.toml").write_text(
        textwrap.dedent(AGENT.format(voicemail=textwrap.dedent(voicemail), desk=DESK))
    )
    (agents / "front.toml").write_text(
        textwrap.dedent(AGENT.format(voicemail="", desk=DESK)).replace('"acme"', '"default"')
    )
    rest = rest or FakeTwilioRest(new_sid("AC"), TOKEN)
    twilio_sid = rest.account_sid
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}",
        agents_dir=agents,
        prompts_dir=prompts,
        default_agent="front",
        secret_keys=(SECRET_KEY,),
        public_url=PUBLIC,
        **overrides,
    )
    async with httpx.AsyncClient(transport=rest.transport()) as twilio_http:
        app = create_app(settings, env={}, twilio_http=twilio_http)
        async with (
            serve(app) as hostport,
            httpx.AsyncClient(base_url=f"http://{hostport}", timeout=10) as http,
        ):
            acme = bearer(await api_key(app, org="acme", scope="write"))
            admin = bearer(await api_key(app, org="acme"))
            twilio = FakeTwilio(http, TOKEN, account_sid=twilio_sid, public_base=PUBLIC)
            put = await http.put(
                "/v1/credentials/twilio",
                json={"account_sid": twilio_sid, "auth_token": TOKEN},
                headers=admin,
            )
            assert put.status_code in (200, 201), put.text
            added = await http.post("/v1/numbers", json={"number": NUMBER}, headers=admin)
            assert added.status_code in (201, 409), added.text
            yield Bridge(app, http, acme, twilio, rest)


def only_call(rest: FakeTwilioRest) -> RestCall:
    (call,) = rest.calls.values()
    return call


def agent_turns(call: dict[str, Any]) -> list[str]:
    return [turn["text"] for turn in call["transcript"] if turn["role"] == "agent"]


# --- dialing ----------------------------------------------------------------------------------


async def test_dial_asks_twilio_for_a_streamed_call_and_journals_it(tmp_path: Path) -> None:
    async with running(tmp_path, LEAVE_MESSAGE) as bridge:
        response = await bridge.dial()
        assert response.status_code == 201, response.text
        out = response.json()
        call = only_call(bridge.rest)
        assert out["call_sid"] == call.sid and out["status"] == "queued"
        assert out["direction"] == "outbound" and out["agent"] == "caller"
        assert out["from_number"] == NUMBER and out["to_number"] == CUSTOMER
        assert call.form["To"] == [CUSTOMER] and call.form["From"] == [NUMBER]
        assert call.one("MachineDetection") == "DetectMessageEnd"
        assert call.one("AsyncAmd") == "true"
        assert call.one("AsyncAmdStatusCallback") == f"{PUBLIC}/twilio/amd?call_id={out['id']}"
        assert call.one("StatusCallback") == f"{PUBLIC}/twilio/status?call_id={out['id']}"
        assert call.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
        stream = stream_of(call.one("Twiml") or "")
        assert stream.url == "wss://bridge.example.com/twilio/media"
        assert stream.parameters["call_id"] == out["id"]
        assert stream.parameters["name"] == "Ada" and stream.parameters["agent"] == "caller"
        assert "callbridge_token" in stream.parameters


async def test_dial_refusals(tmp_path: Path) -> None:
    async with running(tmp_path) as bridge:
        cases = [
            ({"agent": "nobody"}, 422, "agent"),
            ({"to": "5551234"}, 422, "to"),
            ({"from": "+15559990000"}, 422, "from"),
        ]
        for body, status, where in cases:
            response = await bridge.dial(**body)
            assert response.status_code == status, response.text
            assert where in response.json()["detail"][0]["loc"]
        assert bridge.rest.calls == {}
        # Twilio refuses: 502 with Twilio's words, and the journal keeps the failed call
        bridge.rest.refuse_with = (400, 21215, "Account not authorized to call +15557654321")
        response = await bridge.dial()
        assert response.status_code == 502
        assert "21215" in response.json()["detail"]
        listed = (await bridge.http.get("/v1/calls", headers=bridge.acme)).json()["calls"]
        assert [(c["status"], c["direction"]) for c in listed] == [("failed", "outbound")]
        assert "Account not authorized" in listed[0]["end_reason"]
        # an organization without a Twilio account cannot dial
        default = bearer(await api_key(bridge.app, scope="write"))
        response = await bridge.http.post(
            "/v1/calls", json={"to": CUSTOMER, "agent": "front"}, headers=default
        )
        assert response.status_code == 409
        # read keys cannot dial
        reader = bearer(await api_key(bridge.app, org="acme", scope="read"))
        body = {"to": CUSTOMER, "agent": "caller"}
        assert (await bridge.http.post("/v1/calls", json=body, headers=reader)).status_code == 403


# --- answering machines -----------------------------------------------------------------------


async def test_machine_gets_the_voicemail_message_then_the_call_ends(tmp_path: Path) -> None:
    async with running(tmp_path, LEAVE_MESSAGE) as bridge:
        call_id = (await bridge.dial()).json()["id"]
        call = only_call(bridge.rest)
        async with bridge.answer(call) as caller:
            await caller.wait_for_agent_audio(min_bytes=4000, timeout=20)
            response = await bridge.amd(call, "machine_end_beep")
            assert response.status_code == 204, response.text
            await until(caller.closed_by_bridge.is_set, 30, "the bridge ending the call")
        journal = await bridge.call(call_id)
        assert journal["status"] == "completed"
        assert "last words" in (journal["end_reason"] or "")
        assert any("call us back" in text for text in agent_turns(journal))
        (amd,) = [e for e in journal["events"] if e["kind"] == "answered_by"]
        assert amd["data"]["answered_by"] == "machine_end_beep"
        assert amd["data"]["outcome"] == "voicemail message"
        assert journal["call_sid"] == call.sid


@pytest.mark.parametrize(
    ("answered_by", "outcome", "ends"),
    [("machine_start", "hung up", True), ("fax", "hung up", True), ("human", "continue", False)],
)
async def test_amd_branches(tmp_path: Path, answered_by: str, outcome: str, ends: bool) -> None:
    async with running(tmp_path) as bridge:  # no [voicemail]: a machine is hung up on
        response = await bridge.dial(machine_detection="detect")
        call_id = response.json()["id"]
        call = only_call(bridge.rest)
        assert call.one("MachineDetection") == "Enable"
        async with bridge.answer(call) as caller:
            await caller.wait_for_agent_audio(min_bytes=4000, timeout=20)
            assert (await bridge.amd(call, answered_by)).status_code == 204
            if ends:
                await until(caller.closed_by_bridge.is_set, 20, "the bridge ending the call")
            else:
                assert call_id in bridge.app.state.services.running
        journal = await bridge.call(call_id)
        (amd,) = [e for e in journal["events"] if e["kind"] == "answered_by"]
        assert amd["data"]["outcome"] == outcome
        if ends:
            assert journal["end_reason"] == f"answered by {answered_by.replace('_', ' ')}"


async def test_amd_callbacks_must_be_signed(tmp_path: Path) -> None:
    async with running(tmp_path, LEAVE_MESSAGE) as bridge:
        call_id = (await bridge.dial()).json()["id"]
        call = only_call(bridge.rest)
        params = {"AccountSid": bridge.rest.account_sid, "CallSid": call.sid}
        forged = await bridge.http.post(
            f"/twilio/amd?call_id={call_id}",
            data={**params, "AnsweredBy": "machine_start"},
            headers={"X-Twilio-Signature": "AAAA"},
        )
        assert forged.status_code == 403
        other = await bridge.twilio.post(
            f"/twilio/amd?call_id={call_id}", {**params, "CallSid": new_sid("CA")}
        )
        assert other.status_code == 404  # the URL's call and the CallSid must agree


# --- live call control --------------------------------------------------------------------------


def tone_energy(ulaw: bytes, frequency: float) -> float:
    """Goertzel power of ``frequency`` in 8 kHz μ-law audio, relative to the signal's power."""
    pcm = np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16).astype(np.float64)
    if not len(pcm):
        return 0.0
    n = np.arange(len(pcm))
    reference = np.exp(-2j * math.pi * frequency * n / 8000)
    power = abs(np.dot(pcm, reference)) ** 2 / len(pcm)
    return float(power / max(1.0, float(np.dot(pcm, pcm))))


async def test_every_control_action_on_a_live_call(tmp_path: Path) -> None:
    async with running(tmp_path) as bridge:
        http, acme = bridge.http, bridge.acme
        call_id = (await bridge.dial()).json()["id"]
        call = only_call(bridge.rest)

        async def act(action: str, body: dict[str, Any]) -> httpx.Response:
            return await http.post(f"/v1/calls/{call_id}/{action}", json=body, headers=acme)

        async with bridge.answer(call) as caller:
            await caller.wait_for_agent_audio(min_bytes=4000, timeout=20)
            await caller.wait_until_quiet(quiet_s=0.5, timeout=20)

            heard = caller.arrived_bytes
            assert (await act("say", {"text": "Your parcel ships on Monday."})).status_code == 204
            await caller.wait_for_agent_audio(min_bytes=heard + 4000, timeout=20)
            await caller.wait_until_quiet(quiet_s=0.5, timeout=20)

            assert (
                await act("messages", {"role": "system", "text": "VIP", "respond": False})
            ).status_code == 204
            assert (
                await act("messages", {"role": "user", "text": "hello there", "respond": False})
            ).status_code == 204
            assert (await act("mute", {"caller": True})).status_code == 204
            assert (await act("mute", {"caller": False, "agent": False})).status_code == 204

            before = len(caller.received_audio)
            assert (await act("dtmf", {"digits": "1"})).status_code == 204
            await until(lambda: len(caller.received_audio) >= before + 1600, 10, "the tones")
            tones = bytes(caller.received_audio[before : before + 800])
            assert tone_energy(tones, 697) > 0.05 and tone_energy(tones, 1209) > 0.05
            assert tone_energy(tones, 941) < 0.01

            before = caller.arrived_bytes
            assert (await act("hold", {"on": True})).status_code == 204
            await caller.wait_for_agent_audio(min_bytes=before + 8000, timeout=10)
            assert (await act("hold", {"on": False})).status_code == 204

            assert (await act("dtmf", {"digits": "12x"})).status_code == 422
            assert (await act("transfer", {"target": "not a number"})).status_code == 422
            other = bearer(await api_key(bridge.app, scope="write"))
            foreign = await http.post(f"/v1/calls/{call_id}/hangup", json={}, headers=other)
            assert foreign.status_code == 404

            assert (await act("transfer", {"target": DESK})).status_code == 204
            await until(lambda: call_id not in bridge.app.state.services.running, 10, "end")
        (update,) = call.updates
        dial = parse_twiml(update["Twiml"][0]).find("./Dial/Number")
        assert dial is not None and dial.text == DESK
        journal = await bridge.call(call_id)
        assert journal["status"] == "transferred"
        assert journal["end_reason"] == f"transferred to {DESK}"
        assert "Your parcel ships on Monday." in agent_turns(journal)
        assert any(
            t["role"] == "user" and t["text"] == "hello there" for t in journal["transcript"]
        )
        actions = [e["data"].get("action") for e in journal["events"] if e["kind"] == "control"]
        assert actions == [
            "say",
            "inject",
            "inject",
            "mute",
            "mute",
            "mute",
            "hold",
            "mute",
            "unhold",
        ]
        assert [e["data"] for e in journal["events"] if e["kind"] == "dtmf_sent"] == [
            {"digits": "1"}
        ]
        # the call is over: control is a 409
        assert (await act("hangup", {})).status_code == 409


async def test_hang_up_through_the_api(tmp_path: Path) -> None:
    async with running(tmp_path) as bridge:
        call_id = (await bridge.dial()).json()["id"]
        async with bridge.answer(only_call(bridge.rest)) as caller:
            await caller.wait_for_agent_audio(min_bytes=2000, timeout=20)
            response = await bridge.http.post(
                f"/v1/calls/{call_id}/hangup", json={"reason": "done here"}, headers=bridge.acme
            )
            assert response.status_code == 204
            await until(caller.closed_by_bridge.is_set, 10, "the bridge ending the call")
        journal = await bridge.call(call_id)
        assert journal["status"] == "completed" and journal["end_reason"] == "done here"
        await asyncio.sleep(0)


async def test_the_agent_transfers_with_its_built_in_tool(tmp_path: Path) -> None:
    """A user message makes the scripted agent call ``transfer_call`` with a named target."""
    async with running(tmp_path) as bridge:
        call_id = (await bridge.dial()).json()["id"]
        call = only_call(bridge.rest)
        async with bridge.answer(call) as caller:
            await caller.wait_for_agent_audio(min_bytes=4000, timeout=20)
            await caller.wait_until_quiet(quiet_s=0.5, timeout=20)
            response = await bridge.http.post(
                f"/v1/calls/{call_id}/messages",
                json={"role": "user", "text": "transfer me to the desk"},
                headers=bridge.acme,
            )
            assert response.status_code == 204
            await until(lambda: call_id not in bridge.app.state.services.running, 20, "end")
        (update,) = call.updates
        number = parse_twiml(update["Twiml"][0]).find("./Dial/Number")
        assert number is not None and number.text == DESK
        journal = await bridge.call(call_id)
        assert journal["status"] == "transferred"
        (tool,) = journal["tool_calls"]
        assert tool["name"] == "transfer_call" and tool["arguments"] == {"target": "desk"}
        assert tool["ok"] is True
