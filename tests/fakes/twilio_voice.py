"""Twilio's side of the voice webhooks: what Twilio POSTs, signed as Twilio signs it, and what it
does with the TwiML it gets back.

Twilio believes it talks to ``public_base`` (``https://bridge.example.com``: the URL it signs and
the host the TwiML points at); the requests really go to the bridge on loopback, as they would
through a reverse proxy. Signatures come from the ``twilio`` package's own ``RequestValidator``.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import httpx
from twilio.request_validator import RequestValidator


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class StreamInstruction:
    """The ``<Connect><Stream>`` of a TwiML answer."""

    url: str
    status_callback: str | None
    parameters: dict[str, str]


@dataclass
class FakeTwilio:
    http: httpx.AsyncClient
    """A client for the bridge's real (loopback) address."""
    auth_token: str
    account_sid: str = field(default_factory=lambda: new_sid("AC"))
    public_base: str = "https://bridge.example.com"

    def sign(self, url: str, params: dict[str, str]) -> str:
        return str(RequestValidator(self.auth_token).compute_signature(url, params))

    async def post(
        self,
        path: str,
        params: dict[str, str],
        *,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST ``params`` form-encoded to ``path``, signed over ``public_base + path``."""
        url = self.public_base + path
        sent = {"X-Twilio-Signature": signature or self.sign(url, params), **(headers or {})}
        return await self.http.post(path, data=params, headers=sent)

    def voice_params(self, *, to: str, from_: str, call_sid: str | None = None) -> dict[str, str]:
        """The form of an inbound call's voice webhook, as Twilio sends it."""
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid or new_sid("CA"),
            "CallStatus": "ringing",
            "Called": to,
            "CalledCountry": "US",
            "Caller": from_,
            "CallerCountry": "US",
            "Direction": "inbound",
            "From": from_,
            "FromCountry": "US",
            "To": to,
            "ToCountry": "US",
        }

    async def status(self, call_sid: str, status: str, **extra: str) -> httpx.Response:
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "CallStatus": status,
            **extra,
        }
        return await self.post("/twilio/status", params)

    async def stream_status(
        self, call_sid: str, stream_sid: str, event: str, error: str | None = None
    ) -> httpx.Response:
        params = {
            "AccountSid": self.account_sid,
            "CallSid": call_sid,
            "StreamSid": stream_sid,
            "StreamName": stream_sid,
            "StreamEvent": event,
            "Timestamp": "2026-11-21T10:00:00Z",
        }
        if error is not None:
            params["StreamError"] = error
        return await self.post("/twilio/stream-status", params)

    def loopback(self, url: str) -> str:
        """Where a URL in the TwiML (on ``public_base``'s host) really is: the bridge."""
        real = urlsplit(str(self.http.base_url))
        parts = urlsplit(url)
        scheme = {"wss": "ws", "https": "http"}.get(parts.scheme, parts.scheme)
        return f"{scheme}://{real.netloc}{parts.path}"


def parse_twiml(xml: str) -> ElementTree.Element:
    root = ElementTree.fromstring(xml)
    assert root.tag == "Response", xml
    return root


def stream_of(xml: str) -> StreamInstruction:
    """The ``<Connect><Stream>`` Twilio would obey (fails if the TwiML has none)."""
    root = parse_twiml(xml)
    stream = root.find("./Connect/Stream")
    assert stream is not None, xml
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return StreamInstruction(stream.attrib["url"], stream.attrib.get("statusCallback"), parameters)


def verbs(xml: str) -> list[str]:
    return [child.tag for child in parse_twiml(xml)]


def attributes(xml: str, verb: str) -> dict[str, Any]:
    found = parse_twiml(xml).find(verb)
    assert found is not None, xml
    return dict(found.attrib)


# --- Twilio's REST API (Calls) ----------------------------------------------------------------


@dataclass
class RestCall:
    """A call the bridge asked the fake Twilio to make (the form it POSTed, as Twilio got it)."""

    sid: str
    form: dict[str, list[str]]
    updates: list[dict[str, list[str]]] = field(default_factory=list)

    def one(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")
REQUIRED_ONE_OF = ("Url", "Twiml", "ApplicationSid")
MACHINE_DETECTION_MODES = ("Enable", "DetectMessageEnd")


def _twilio_error(status: int, code: int, message: str) -> httpx.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return httpx.Response(status, json=body)


@dataclass
class FakeTwilioRest:
    """``api.twilio.com`` for the Calls resource, as an ``httpx`` transport: checks basic auth
    and the form the way Twilio does (error codes and JSON of Twilio's API), answers with a call
    resource, and keeps every call and update for the test to inspect and drive."""

    account_sid: str
    auth_token: str
    calls: dict[str, RestCall] = field(default_factory=dict)
    refuse_with: tuple[int, int, str] | None = None
    """Answer the next dial with this (status, code, message) error."""

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.host == "api.twilio.com", request.url
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return _twilio_error(401, 20003, "Authenticate")
        prefix = f"/2010-04-01/Accounts/{self.account_sid}/Calls"
        path = request.url.path
        form = parse_qs(request.content.decode(), keep_blank_values=True)
        if request.method == "POST" and path == prefix + ".json":
            return self._create(form)
        if request.method == "POST" and path.startswith(prefix + "/") and path.endswith(".json"):
            sid = path[len(prefix) + 1 : -len(".json")]
            call = self.calls.get(sid)
            if call is None:
                return _twilio_error(404, 20404, "The requested resource was not found")
            call.updates.append(form)
            return httpx.Response(200, json=self._resource(call, "in-progress"))
        return _twilio_error(404, 20404, "The requested resource was not found")

    def _create(self, form: dict[str, list[str]]) -> httpx.Response:
        for name in ("To", "From"):
            if not form.get(name):
                return _twilio_error(400, 21201, f"No '{name}' number is specified")
        if not any(form.get(name) for name in REQUIRED_ONE_OF):
            return _twilio_error(400, 21205, "Url parameter is required.")
        if not E164_RE.fullmatch(form["To"][0]):
            return _twilio_error(400, 21211, f"Invalid 'To' Phone Number: {form['To'][0]}")
        detection = form.get("MachineDetection", [None])[0]
        if detection is not None and detection not in MACHINE_DETECTION_MODES:
            return _twilio_error(400, 21626, "MachineDetection must be Enable or DetectMessageEnd")
        if self.refuse_with is not None:
            status, code, message = self.refuse_with
            self.refuse_with = None
            return _twilio_error(status, code, message)
        call = RestCall(new_sid("CA"), form)
        self.calls[call.sid] = call
        return httpx.Response(201, json=self._resource(call, "queued"))

    def _resource(self, call: RestCall, status: str) -> dict[str, Any]:
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "to": call.one("To"),
            "from": call.one("From"),
            "status": status,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call.sid}.json",
        }
