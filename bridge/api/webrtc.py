"""Browser test calls: ``POST /v1/webrtc/offer`` answers a browser's SDP offer and runs the call.

The browser sends its offer (ICE candidates gathered, no trickle) with the agent and context
variables; the bridge answers, and the call runs like any carrier's — carrier ``webrtc`` in the
journal — with a :class:`~bridge.carriers.webrtc.peer.BrowserPeer` as its socket. The answer
carries the call id, so the console can follow the call's live journal at once
(``GET /v1/calls/{id}/live``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from bridge.api.auth import Reader, Writer
from bridge.api.errors import invalid
from bridge.carriers.webrtc.codec import WebRTCCodec
from bridge.carriers.webrtc.peer import BrowserPeer, check_offer
from bridge.errors import ConfigError
from bridge.journal.ids import new_call_id
from bridge.runtime.admission import admit
from bridge.runtime.call import CallRuntime
from bridge.runtime.engines import preferred_format
from bridge.runtime.services import Services
from bridge.tools.webhook import local_base_url

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/webrtc", tags=["webrtc"])

MAX_SDP_CHARS = 64 * 1024


class OfferIn(BaseModel):
    sdp: Annotated[str, Field(max_length=MAX_SDP_CHARS, description="The browser's SDP offer")]
    type: str = Field("offer", description='Always "offer"')
    agent: str | None = Field(None, description="Agent name; the default agent if omitted")
    context: dict[str, str] = Field(
        default_factory=dict, description="Variables for the agent's prompt (as on a phone call)"
    )


class AnswerOut(BaseModel):
    sdp: str
    type: str = "answer"
    call_id: str
    audio_format: str = Field(description="What the call's audio is carried in, bridge side")


class IceServerOut(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class WebRTCConfigOut(BaseModel):
    ice_servers: list[IceServerOut]


@router.get("/config", response_model=WebRTCConfigOut, summary="ICE servers for the browser")
async def webrtc_config(request: Request, principal: Reader) -> WebRTCConfigOut:
    services: Services = request.app.state.services
    return WebRTCConfigOut(
        ice_servers=[IceServerOut(**server) for server in services.settings.ice_servers]
    )


@router.post(
    "/offer",
    response_model=AnswerOut,
    summary="Start a browser call: answer its SDP offer",
    responses={
        422: {"description": "Unknown agent, or an offer that is not usable SDP"},
        401: {"description": "No valid API key"},
        403: {"description": "The API key cannot write"},
        503: {"description": "At capacity"},
    },
)
async def webrtc_offer(offer: OfferIn, request: Request, principal: Writer) -> AnswerOut:
    services: Services = request.app.state.services
    if services.tools.local_base is None:
        services.tools.local_base = local_base_url(request.scope.get("server"))
    try:
        agent = services.agents.get(offer.agent, principal.org)
    except ConfigError as exc:
        raise invalid(("body", "agent"), str(exc), offer.agent) from None
    try:
        check_offer(offer.sdp, offer.type)
    except ValueError as exc:
        raise invalid(("body", "sdp"), f"unusable SDP offer: {exc}") from None
    call_id = new_call_id()
    slot = contextlib.ExitStack()  # the call's admission, held until its task ends
    if not slot.enter_context(admit(services, call_id, WebRTCCodec.carrier)):
        slot.close()  # refused (and journaled so)
        raise HTTPException(503, "callbridge is at capacity")
    audio_format = preferred_format(agent)
    parameters = {**offer.context, "agent": agent.name}
    peer = BrowserPeer(
        call_id=call_id,
        audio_format=audio_format,
        parameters=parameters,
        ice_servers=services.settings.ice_servers,
    )
    try:
        answer = await peer.answer(offer.sdp, offer.type)
    except ValueError as exc:  # what check_offer could not see (aiortc's own negotiation)
        slot.close()
        await peer.close()
        raise invalid(("body", "sdp"), f"unusable SDP offer: {exc}") from None
    calls: dict[asyncio.Task[Any], BrowserPeer] = request.app.state.browser_calls
    task = asyncio.create_task(_run(services, peer, call_id, slot), name=f"webrtc-{call_id}")
    calls[task] = peer
    task.add_done_callback(lambda done: calls.pop(done, None))
    return AnswerOut(sdp=answer.sdp, type=answer.type, call_id=call_id, audio_format=audio_format)


async def _run(
    services: Services, peer: BrowserPeer, call_id: str, slot: contextlib.ExitStack
) -> None:
    with slot:
        try:
            await CallRuntime(services, peer, WebRTCCodec(), call_id=call_id).run()
        finally:
            await peer.close()


SHUTDOWN_GRACE_S = 5.0


async def end_browser_calls(calls: dict[asyncio.Task[Any], BrowserPeer]) -> None:
    """Server shutdown: hang up every browser call (journaled as ended), cancel the stragglers."""
    if not calls:
        return
    tasks = list(calls)
    for peer in list(calls.values()):
        await peer.close()
    _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
    for task in pending:
        task.cancel()
