"""Outbound dials and live call control.

``POST /v1/calls`` dials a number with an agent through the organization's Twilio account
(:mod:`bridge.runtime.outbound`). The ``/v1/calls/{id}/…`` actions reach a call this server is
carrying: hang up, say a text, add a message to the agent's context, mute a side, hold with
music, send keypad tones, cold-transfer. All need the ``write`` scope; another organization's
call is a 404; a call that is over (or carried by another worker) is a 409.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.types import DecoratedCallable
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bridge.agents.builtins import DTMF_DIGITS, is_transfer_target
from bridge.api.auth import Writer
from bridge.api.calls import CallOut, Journal, load_call
from bridge.api.errors import ERROR_RESPONSES, ErrorOut, invalid, store_errors
from bridge.api.twilio_hooks import public_url
from bridge.errors import CarrierApiError
from bridge.journal.models import E164
from bridge.runtime.outbound import DialRefused, OutboundCall, place_call
from bridge.runtime.services import ControlRefused, LiveCall, Services

__all__ = ["router"]

router = APIRouter(prefix="/v1/calls", tags=["call control"], responses=ERROR_RESPONSES)


def _described(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


CONTROL_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: _described("No call with this id"),
    409: _described("The call is over, not carried by this server, or cannot do this now"),
    502: _described("The carrier refused the request"),
}
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Variable = Annotated[str, StringConstraints(max_length=1000)]


class DialIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: Annotated[str, Field(pattern=f"^{E164.pattern}$", description="E.164 number to call")]
    agent: Annotated[str, Field(min_length=1, max_length=64)]
    from_: Annotated[
        str | None,
        Field(
            alias="from",
            pattern=f"^{E164.pattern}$",
            description="One of the organization's numbers (default: its first active one)",
        ),
    ] = None
    context: Annotated[
        dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")], Variable],
        Field(max_length=50, description="Variables for the agent's prompt"),
    ] = {}
    machine_detection: Literal["off", "detect", "detect_message_end"] | None = Field(
        None, description="Answering-machine detection (default: the agent's [voicemail] detect)"
    )
    ring_timeout_s: Annotated[int, Field(ge=5, le=120)] = 30


class DialOut(CallOut):
    pass


@router.post(
    "",
    status_code=201,
    response_model=DialOut,
    summary="Dial a number with an agent (Twilio)",
    responses={
        409: _described("The organization cannot dial: no Twilio account or no active number"),
        502: _described("Twilio refused the call (the journal records it as failed)"),
    },
)
async def dial(body: DialIn, request: Request, principal: Writer, journal: Journal) -> DialOut:
    services: Services = request.app.state.services
    call = OutboundCall(
        to=body.to,
        agent=body.agent,
        from_=body.from_,
        context=body.context,
        machine_detection=body.machine_detection,
        ring_timeout_s=body.ring_timeout_s,
    )
    base = public_url(request, services.settings.public_url).split("/v1/", 1)[0]
    try:
        with store_errors():
            placed = await place_call(services, principal.org, call, base_url=base)
    except DialRefused as exc:
        if exc.field is not None:
            where = "from" if exc.field == "from" else exc.field
            raise invalid(("body", where), exc.message) from None
        raise HTTPException(409, detail=exc.message) from None
    except CarrierApiError as exc:
        await services.journal.flush()  # the failed call is in the journal when we answer
        raise HTTPException(502, detail=exc.message) from None
    await services.journal.flush()
    detail = await load_call(journal, placed.call_id, principal.org)
    return DialOut.model_validate(detail.call)


# --- live call control ------------------------------------------------------------------------


async def _live(call_id: str, request: Request, principal: Writer, journal: Journal) -> LiveCall:
    """The call this worker carries (404 for a missing or foreign one, 409 if it is not live
    here); the key needs the write scope."""
    services: Services = request.app.state.services
    live = services.running.get(call_id)
    if live is not None and live.org == principal.org:
        return live
    detail = await load_call(journal, call_id, principal.org)
    state = "is over" if detail.call.ended_at is not None else "is not carried by this server"
    raise HTTPException(409, detail=f"call {call_id} {state}")


Live = Annotated[LiveCall, Depends(_live)]


async def _act(coro: Any) -> Response:
    try:
        await coro
    except ControlRefused as exc:
        raise HTTPException(409, detail=exc.message) from None
    except CarrierApiError as exc:
        raise HTTPException(502, detail=exc.message) from None
    return Response(status_code=204)


class HangUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, StringConstraints(max_length=200)] = "hung up by the API"


class SayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Text
    interrupt: bool = Field(False, description="Cut what the agent is saying first")
    then_hang_up: bool = Field(False, description="End the call once the text has played")


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "system"]
    text: Text
    respond: bool = Field(True, description="Have the agent respond now")


class MuteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    caller: bool | None = None
    agent: bool | None = None


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: bool


class DtmfIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digits: Annotated[str, Field(pattern=f"^{DTMF_DIGITS.pattern}$")]


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Annotated[
        str, Field(max_length=210, description="E.164 number or SIP URI (sip:… / sips:…)")
    ]


def _route(path: str, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    return router.post(
        "/{call_id}/" + path, status_code=204, summary=summary, responses=CONTROL_RESPONSES
    )


@_route("hangup", "Hang up a live call")
async def hang_up(body: HangUpIn, live: Live) -> Response:
    return await _act(live.hang_up(body.reason))


@_route("say", "Have the agent say a text, word for word")
async def say(body: SayIn, live: Live) -> Response:
    return await _act(live.say(body.text, interrupt=body.interrupt, then_hang_up=body.then_hang_up))


@_route("messages", "Add a user or system message to the agent's context")
async def inject(body: MessageIn, live: Live) -> Response:
    return await _act(live.inject(body.role, body.text, respond=body.respond))


@_route("mute", "Mute or unmute the caller and/or the agent")
async def mute(body: MuteIn, live: Live) -> Response:
    return await _act(live.mute(caller=body.caller, agent=body.agent))


@_route("hold", "Put the caller on hold with music, or take them off it")
async def hold(body: HoldIn, live: Live) -> Response:
    return await _act(live.hold(body.on))


@_route("dtmf", "Send keypad tones (DTMF, in band) into the call")
async def send_dtmf(body: DtmfIn, live: Live) -> Response:
    return await _act(live.send_dtmf(body.digits))


@_route("transfer", "Cold-transfer the call to a number or SIP URI (Twilio calls)")
async def transfer(body: TransferIn, live: Live) -> Response:
    if not is_transfer_target(body.target):
        raise invalid(("body", "target"), "must be an E.164 number or a SIP URI", body.target)
    return await _act(live.transfer(body.target))
