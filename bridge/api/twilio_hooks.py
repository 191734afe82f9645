"""Twilio's webhooks: an inbound call (``/twilio/voice``), its progress (``/twilio/status``) and
its media stream's (``/twilio/stream-status``).

Every request must carry a valid ``X-Twilio-Signature``, checked with the ``twilio`` package's
``RequestValidator`` against the URL Twilio called: ``CALLBRIDGE_PUBLIC_URL`` + path + query when
set (the way to be right behind any proxy), else the request's own URL as the proxy reports it
(``X-Forwarded-Proto`` / ``X-Forwarded-Host``). The auth token is the called number's
organization's stored Twilio credential, else ``TWILIO_AUTH_TOKEN`` for the default
organization; no token, or a bad signature, is a 403 and nothing is journaled.

``/twilio/voice`` finds the organization from the called number, the agent from its routing
rules (else the number's inbound agent), journals the call (``ringing``) and answers TwiML
``<Connect><Stream>`` built with the ``twilio`` package. The stream's ``<Parameter>``s carry the
call id, the agent, the rule's context variables and ``callbridge_token`` — a signed,
short-lived ``<call id>:<org>`` with which the media stream joins this journal record. A number
that is unknown, inactive, outbound-only or has no agent is answered ``<Reject>``.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, HTTPException, Request, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse

from bridge.api.credentials import credential_fields, get_secrets
from bridge.api.errors import unavailable
from bridge.api.keys import get_control
from bridge.errors import ConfigError
from bridge.journal.ids import new_call_id
from bridge.journal.models import CallSummary
from bridge.journal.store import JournalError, JournalStore
from bridge.runtime.call import STREAM_TOKEN_PARAM, STREAM_TOKEN_PURPOSE
from bridge.runtime.services import Services
from bridge.session.actions import JournalEvent

__all__ = ["FINAL_STATUSES", "public_url", "router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

STREAM_TOKEN_TTL_S = 300
"""How long after the TwiML the media stream may still join its call."""
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
TWIML = "application/xml"
MAX_FORM_BYTES = 64 * 1024
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"description": "Missing or invalid X-Twilio-Signature"}
}


def public_url(request: Request, base: str | None) -> str:
    """The URL the caller used for ``request``: under ``base`` when configured, else as the
    request (and the proxy in front of it) says."""
    path_and_query = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if base:
        return base.rstrip("/") + path_and_query
    headers = request.headers
    scheme = headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
    host = headers.get("x-forwarded-host") or headers.get("host") or request.url.netloc
    return f"{scheme}://{host.split(',')[0].strip()}{path_and_query}"


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, detail="form too large")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise HTTPException(400, detail="the form is not UTF-8") from None


async def _auth_token(request: Request, org: str | None) -> str | None:
    services: Services = request.app.state.services
    if org is not None:
        try:
            fields = await credential_fields(
                get_control(request), get_secrets(request), org, "twilio"
            )
        except JournalError as exc:
            raise unavailable(exc) from exc
        if fields is not None:
            return fields["auth_token"]
    if org in (None, "default"):
        return services.settings.twilio_auth_token
    return None


async def _verify(request: Request, form: dict[str, str], org: str | None) -> None:
    token = await _auth_token(request, org)
    signature = request.headers.get("x-twilio-signature", "")
    services: Services = request.app.state.services
    url = public_url(request, services.settings.public_url)
    if token is None or not signature or not RequestValidator(token).validate(url, form, signature):
        log.warning("twilio webhook %s: signature rejected (url %s)", request.url.path, url)
        raise HTTPException(403, detail="invalid X-Twilio-Signature")


def _twiml(response: VoiceResponse) -> Response:
    return Response(content=str(response), media_type=TWIML)


def _reject(reason: str) -> Response:
    response = VoiceResponse()
    response.reject(reason="rejected")
    log.info("twilio: call rejected: %s", reason)
    return _twiml(response)


@router.post(
    "/voice",
    summary="Twilio voice webhook: answer an inbound call with a media stream to its agent",
    response_class=Response,
    responses={200: {"content": {TWIML: {}}, "description": "TwiML"}, **FORBIDDEN},
)
async def voice(request: Request) -> Response:
    services: Services = request.app.state.services
    control = get_control(request)
    form = await _form(request)
    called, caller = form.get("To", ""), form.get("From") or None
    try:
        number = await control.number_by_e164(called)
    except JournalError as exc:
        raise unavailable(exc) from exc
    await _verify(request, form, number.org_id if number is not None else None)
    if number is None:
        return _reject(f"{called or 'no number'} is not attached to any organization")
    org = number.org_id
    call_sid = form.get("CallSid") or None
    now = datetime.now(UTC)
    journal = services.journal

    def refuse(reason: str) -> Response:
        call_id = new_call_id()
        journal.call_started(
            call_id,
            carrier="twilio",
            started_at=now,
            org_id=org,
            call_sid=call_sid,
            from_number=caller,
            to_number=called,
        )
        journal.call_finished(call_id, status="rejected", end_reason=reason, ended_at=now)
        return _reject(reason)

    if not number.active:
        return refuse(f"number {called} is inactive")
    if number.outbound_only:
        return refuse(f"number {called} is outbound-only")
    try:
        route = await control.route(org, called, caller)
    except JournalError as exc:
        raise unavailable(exc) from exc
    if route is None:
        return refuse(f"no agent answers {called}")
    agent_name, context = route
    try:
        agent = services.agents.get(agent_name, org)
    except ConfigError as exc:
        return refuse(f"routing names an unusable agent: {exc}")
    call_id = new_call_id()
    parameters: dict[str, Any] = {
        **context,
        "from": caller or "",
        "to": called,
        "agent": agent.name,
        "call_id": call_id,
    }
    journal.call_started(
        call_id,
        carrier="twilio",
        started_at=now,
        status="ringing",
        org_id=org,
        agent=agent.name,
        call_sid=call_sid,
        from_number=caller,
        to_number=called,
        context={k: v for k, v in parameters.items() if k != "call_id"},
    )
    token = get_secrets(request).sign(
        STREAM_TOKEN_PURPOSE, f"{call_id}:{org}", int(time.time()) + STREAM_TOKEN_TTL_S
    )
    return _twiml(stream_twiml(request, services, parameters, token))


def stream_twiml(
    request: Request, services: Services, parameters: dict[str, Any], token: str
) -> VoiceResponse:
    """``<Connect><Stream url=wss://…/twilio/media>`` with the call's ``<Parameter>``s."""
    base = urlsplit(public_url(request, services.settings.public_url))
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
    return response


async def _call_of(request: Request, call_sid: str) -> CallSummary:
    journal: JournalStore = request.app.state.journal
    services: Services = request.app.state.services
    if not call_sid:
        raise HTTPException(404, detail="no call with this CallSid")
    try:
        found = await journal.list_calls(call_sid=call_sid, limit=1)
        if not found:  # the webhook's record may still sit in the writer's batch
            await services.journal.flush()
            found = await journal.list_calls(call_sid=call_sid, limit=1)
    except JournalError as exc:
        raise unavailable(exc) from exc
    if not found:
        raise HTTPException(404, detail="no call with this CallSid")
    return found[0]


def _time_in_call(call: CallSummary) -> float:
    return max(0.0, (datetime.now(UTC) - call.started_at).total_seconds())


@router.post(
    "/status",
    summary="Twilio call status callback: the call's progress into the journal",
    status_code=204,
    responses={404: {"description": "No call with this CallSid"}, **FORBIDDEN},
)
async def call_status(request: Request) -> Response:
    services: Services = request.app.state.services
    form = await _form(request)
    call = await _call_of(request, form.get("CallSid", ""))
    await _verify(request, form, call.org_id)
    services.journal.feed.note_org(call.id, call.org_id)  # for /v1/events subscribers
    status = form.get("CallStatus", "")
    data = {
        key: form[name]
        for key, name in (
            ("status", "CallStatus"),
            ("duration_secs", "CallDuration"),
            ("answered_by", "AnsweredBy"),
            ("sip_response_code", "SipResponseCode"),
        )
        if form.get(name)
    }
    journal = services.journal
    journal.record(call.id, JournalEvent("carrier_status", _time_in_call(call), data))
    still_open = call.ended_at is None and call.id not in services.live_calls
    if status in FINAL_STATUSES and still_open:
        # The media stream never ran (or ran elsewhere and ended without journaling): Twilio's
        # word is the call's end.
        journal.call_finished(
            call.id, status=status, end_reason=f"twilio: {status}", ended_at=datetime.now(UTC)
        )
    elif (
        status
        and status not in FINAL_STATUSES
        and call.ended_at is None
        and call.status in ("ringing", "queued", "initiated")
        and status != call.status
    ):
        journal.call_updated(call.id, status=status)
    return Response(status_code=204)


@router.post(
    "/stream-status",
    summary="Twilio <Stream> status callback: stream started / stopped / failed",
    status_code=204,
    responses={404: {"description": "No call with this CallSid"}, **FORBIDDEN},
)
async def stream_status(request: Request) -> Response:
    services: Services = request.app.state.services
    form = await _form(request)
    call = await _call_of(request, form.get("CallSid", ""))
    await _verify(request, form, call.org_id)
    services.journal.feed.note_org(call.id, call.org_id)  # for /v1/events subscribers
    data = {
        key: form[name]
        for key, name in (
            ("event", "StreamEvent"),
            ("stream_sid", "StreamSid"),
            ("error", "StreamError"),
        )
        if form.get(name)
    }
    kind = "stream_error" if form.get("StreamEvent") == "stream-error" else "stream_status"
    services.journal.record(call.id, JournalEvent(kind, _time_in_call(call), data))
    return Response(status_code=204)
