"""Twilio's side of the voice webhooks: what Twilio POSTs, signed as Twilio signs it, and what it
does with the TwiML it gets back.

Twilio believes it talks to ``public_base`` (``https://bridge.example.com``: the URL it signs and
the host the TwiML points at); the requests really go to the bridge on loopback, as they would
through a reverse proxy. Signatures come from the ``twilio`` package's own ``RequestValidator``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
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
