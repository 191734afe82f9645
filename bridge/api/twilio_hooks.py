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
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from bridge.api.credentials import credential_fields, get_secrets
from bridge.api.errors import unavailable
from bridge.api.keys import get_control
from bridge.errors import CarrierApiError, ConfigError
from bridge.journal.ids import new_call_id
from bridge.journal.models import CallSummary
from bridge.journal.store import JournalError, JournalStore
from bridge.runtime.accounts import twilio_account
from bridge.runtime.call import STREAM_TOKEN_PURPOSE
from bridge.runtime.outbound import STREAM_TOKEN_TTL_S, stream_twiml, voicemail_message
from bridge.runtime.services import ControlRefused, Services
from bridge.session.actions import JournalEvent

__all__ = ["FINAL_STATUSES", "public_url", "router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

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
    base = public_url(request, services.settings.public_url)
    return Response(content=stream_twiml(base, parameters, token), media_type=TWIML)


async def _call_of(request: Request, call_sid: str) -> CallSummary:
    """The call a callback is about: by the ``call_id`` of the callback URL (outbound calls,
    whose ``CallSid`` may not be journaled yet), else by Twilio's ``CallSid``."""
    journal: JournalStore = request.app.state.journal
    services: Services = request.app.state.services
    call_id = request.query_params.get("call_id")
    if call_id:
        await services.journal.flush()
        try:
            detail = await journal.get_call(call_id)
        except JournalError as exc:
            raise unavailable(exc) from exc
        if detail is not None and (not call_sid or detail.call.call_sid in (None, call_sid)):
            return detail.call
        raise HTTPException(404, detail="no call with this call_id")
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


async def _callback(request: Request) -> tuple[dict[str, str], CallSummary]:
    """A callback about a journaled call: its form and the call, the signature checked against
    the call's organization (which /v1/events subscribers then know)."""
    services: Services = request.app.state.services
    form = await _form(request)
    call = await _call_of(request, form.get("CallSid", ""))
    await _verify(request, form, call.org_id)
    services.journal.feed.note_org(call.id, call.org_id)
    return form, call


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
    form, call = await _callback(request)
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
    form, call = await _callback(request)
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


MACHINE = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other"}
)


@router.post(
    "/amd",
    summary="Twilio asynchronous answering-machine detection result",
    status_code=204,
    responses={404: {"description": "No such call"}, **FORBIDDEN},
)
async def amd_result(request: Request) -> Response:
    """A person answered (the agent goes on), or a machine / fax did: then the agent's
    ``[voicemail] action`` decides — hang up, leave its message after the beep, or go on."""
    services: Services = request.app.state.services
    form, call = await _callback(request)
    answered_by = form.get("AnsweredBy", "unknown")
    data: dict[str, Any] = {"answered_by": answered_by}
    if form.get("MachineDetectionDuration"):
        data["detection_ms"] = form["MachineDetectionDuration"]
    outcome = await _on_answered_by(services, call, answered_by)
    data["outcome"] = outcome
    services.journal.record(call.id, JournalEvent("answered_by", _time_in_call(call), data))
    return Response(status_code=204)


async def _on_answered_by(services: Services, call: CallSummary, answered_by: str) -> str:
    """Carry out the agent's choice; returns what was done (journaled)."""
    if call.ended_at is not None:
        return "none: the call is over"
    machine = answered_by in MACHINE
    if not machine and answered_by != "fax":
        return "continue"  # human, or unknown: the agent talks
    action = "hang_up"
    message = None
    if machine:
        try:
            agent = services.agents.get(call.agent, call.org_id)
        except ConfigError:
            agent = None
        spec = agent.voicemail if agent is not None else None
        action = spec.action if spec is not None else "hang_up"
        if action == "continue":
            return "continue"
        if action == "leave_message" and agent is not None:
            variables = {k: str(v) for k, v in call.context.items()}
            message = voicemail_message(agent, variables)
    live = services.running.get(call.id)
    reason = f"answered by {answered_by.replace('_', ' ')}"
    try:
        if message is not None and live is not None:
            try:
                await live.say(message, interrupt=True, then_hang_up=True)
                return "voicemail message"
            except ControlRefused:
                pass  # the engine cannot say it: Twilio does, below
        if live is not None and message is None:
            await live.hang_up(reason)
            return "hung up"
        account = await twilio_account(services, call.org_id)
        if account is None or not call.call_sid:
            return "none: no Twilio account to act through"
        if message is not None:
            response = VoiceResponse()
            response.say(message)
            response.hangup()
            await account.redirect(call.call_sid, str(response))
            return "voicemail message (carrier speech)"
        await account.hang_up(call.call_sid)
        return "hung up"
    except (ControlRefused, CarrierApiError) as exc:
        log.warning("call %s: acting on %s failed: %s", call.id, answered_by, exc)
        return f"failed: {exc}"
