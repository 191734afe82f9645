"""Outbound calls: dial a number with an agent through the organization's Twilio account.

:func:`place_call` checks what can be checked before any money is spent (the agent, the numbers,
the account), journals the call (``queued``, direction ``outbound``), and asks Twilio to dial
with the TwiML inline: ``<Connect><Stream>`` to the bridge with the call's ``<Parameter>``s and a
signed ``callbridge_token``, exactly as an inbound call's webhook answers. So the media stream
joins this journal record whichever way the call began. Twilio's progress comes back to
``/twilio/status?call_id=…`` and the answering-machine verdict (when asked for) to
``/twilio/amd?call_id=…`` — the call id in the (signed) URL finds the call even before Twilio's
``CallSid`` is journaled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.twiml.voice_response import Connect, VoiceResponse

from bridge.agents.model import Agent
from bridge.agents.template import render
from bridge.carriers.twilio.rest import DialRequest
from bridge.errors import CallbridgeError, CarrierApiError, ConfigError
from bridge.journal.ids import new_call_id
from bridge.journal.models import is_e164
from bridge.runtime.accounts import twilio_account
from bridge.runtime.call import STREAM_TOKEN_PARAM, STREAM_TOKEN_PURPOSE
from bridge.runtime.services import Services

__all__ = [
    "DialRefused",
    "OutboundCall",
    "PlacedCall",
    "place_call",
    "stream_twiml",
    "voicemail_message",
]

log = logging.getLogger(__name__)

STREAM_TOKEN_TTL_S = 300
"""How long after the TwiML the media stream may still join its call (plus the ring time for an
outbound call, which Twilio may also hold in its queue)."""


class DialRefused(CallbridgeError):
    """The call cannot be placed; ``field`` names the request field at fault (None: the
    organization's set-up, e.g. no Twilio account)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class OutboundCall:
    to: str
    agent: str
    from_: str | None = None
    """One of the organization's active numbers; None: its first active number."""
    context: Mapping[str, str] = field(default_factory=dict)
    machine_detection: str | None = None
    """``off`` / ``detect`` / ``detect_message_end``; None: the agent's ``[voicemail]`` setting."""
    ring_timeout_s: int = 30
    campaign_id: str | None = None
    call_id: str | None = None
    """The journal id to use (a dialer records it before dialing); None: a new one."""


@dataclass(frozen=True, slots=True)
class PlacedCall:
    call_id: str
    call_sid: str
    from_: str
    agent: str


def stream_twiml(base_url: str, parameters: Mapping[str, Any], token: str) -> str:
    """``<Connect><Stream url=wss://…/twilio/media>`` with the call's ``<Parameter>``s."""
    base = urlsplit(base_url)
    ws_scheme = "wss" if base.scheme == "https" else "ws"
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(
        url=f"{ws_scheme}://{base.netloc}/twilio/media",
        status_callback=f"{base.scheme}://{base.netloc}/twilio/stream-status",
        status_callback_method="POST",
    )
    for name, value in parameters.items():
        stream.parameter(name=name, value=str(value))
    stream.parameter(name=STREAM_TOKEN_PARAM, value=token)
    response.append(connect)
    return str(response)


async def place_call(
    services: Services, org: str, call: OutboundCall, *, base_url: str
) -> PlacedCall:
    """Dial ``call`` for ``org``; Twilio calls back under ``base_url`` (the bridge's public URL).

    Raises :class:`DialRefused` before anything is journaled when the request cannot work, and
    :class:`~bridge.errors.CarrierApiError` when Twilio refuses the dial (the call is then
    journaled ``failed`` with Twilio's reason).
    """
    control, box = services.control, services.secrets
    if control is None or box is None:
        raise DialRefused("outbound calls need the control store and the secret key")
    if not is_e164(call.to):
        raise DialRefused(f"{call.to!r} is not an E.164 number", "to")
    try:
        agent = services.agents.get(call.agent, org)
    except ConfigError as exc:
        raise DialRefused(str(exc), "agent") from None
    from_ = await _caller_id(services, org, call.from_)
    account = await twilio_account(services, org)
    if account is None:
        raise DialRefused(
            "the organization has no Twilio account: PUT /v1/credentials/twilio first"
        )
    detection = call.machine_detection or (
        agent.voicemail.detect if agent.voicemail is not None else "off"
    )
    call_id = call.call_id or new_call_id()
    parameters: dict[str, Any] = {
        **call.context,
        "from": from_,
        "to": call.to,
        "agent": agent.name,
        "call_id": call_id,
        "direction": "outbound",
    }
    journal = services.journal
    journal.call_started(
        call_id,
        carrier="twilio",
        started_at=datetime.now(UTC),
        status="queued",
        direction="outbound",
        org_id=org,
        agent=agent.name,
        from_number=from_,
        to_number=call.to,
        campaign_id=call.campaign_id,
        context={k: v for k, v in parameters.items() if k != "call_id"},
    )
    expires = int(time.time()) + STREAM_TOKEN_TTL_S + call.ring_timeout_s
    token = box.sign(STREAM_TOKEN_PURPOSE, f"{call_id}:{org}", expires)
    base = base_url.rstrip("/")
    query = urlencode({"call_id": call_id})
    request = DialRequest(
        to=call.to,
        from_=from_,
        twiml=stream_twiml(base, parameters, token),
        status_callback=f"{base}/twilio/status?{query}",
        machine_detection=detection,
        amd_callback=f"{base}/twilio/amd?{query}",
        timeout_s=call.ring_timeout_s,
    )
    try:
        call_sid = await account.dial(request)
    except CarrierApiError as exc:
        log.warning("call %s: dial refused: %s", call_id, exc)
        journal.call_finished(
            call_id, status="failed", end_reason=str(exc), ended_at=datetime.now(UTC)
        )
        raise
    journal.call_updated(call_id, call_sid=call_sid)
    log.info("call %s: dialing %s from %s (%s, %s)", call_id, call.to, from_, agent.name, call_sid)
    return PlacedCall(call_id, call_sid, from_, agent.name)


async def _caller_id(services: Services, org: str, wanted: str | None) -> str:
    """The number to call from: ``wanted`` if it is the organization's and active, else (when
    none is given) its first active number."""
    control = services.control
    assert control is not None
    if wanted is not None:
        number = await control.org_number(org, wanted)
        if number is None:
            raise DialRefused(f"{wanted} is not one of the organization's numbers", "from")
        if not number.active:
            raise DialRefused(f"number {wanted} is inactive", "from")
        return wanted
    for number in await control.list_numbers(org):
        if number.active:
            return number.number
    raise DialRefused("the organization has no active number to call from: POST /v1/numbers")


def voicemail_message(agent: Agent, variables: Mapping[str, str]) -> str | None:
    """The agent's rendered voicemail message (None when it leaves none)."""
    spec = agent.voicemail
    if spec is None or spec.message is None:
        return None
    values = {**agent.variables, **variables}
    return render(spec.message, values, source=f"agent '{agent.name}' voicemail message")
