"""Carrier media websockets: one route per carrier protocol, one call per stream."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from bridge.carriers.base import CarrierCodec
from bridge.carriers.telnyx.codec import TelnyxCodec
from bridge.carriers.telnyx.control import TelnyxCallControl
from bridge.carriers.twilio.codec import TwilioCodec
from bridge.journal.ids import new_call_id
from bridge.runtime.admission import admit
from bridge.runtime.call import CallRuntime
from bridge.runtime.services import Services
from bridge.session import events as ev
from bridge.tools.webhook import local_base_url

log = logging.getLogger(__name__)
router = APIRouter()

HangUp = Callable[[ev.CallStarted], Awaitable[None]]
"""Ends a call over the carrier's API (the socket alone would not)."""


class StarletteSocket:
    """Adapts a Starlette websocket to the runtime's ``CarrierSocket``."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        self._closed = False  # we closed it: nothing more to send or read
        self._send_failed = False  # the peer went away mid-send; its last frames may still be read

    async def receive(self) -> str | bytes | None:
        if self._closed:
            return None
        try:
            message = await self._ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            self._closed = True
            return None
        if message["type"] == "websocket.disconnect":
            self._closed = True
            return None
        text: str | None = message.get("text")
        if text is not None:
            return text
        data: bytes | None = message.get("bytes")
        return data if data is not None else b""

    async def send(self, frame: str | bytes) -> None:
        if self._closed or self._send_failed:
            return
        try:
            if isinstance(frame, str):
                await self._ws.send_text(frame)
            else:
                await self._ws.send_bytes(frame)
        except (WebSocketDisconnect, RuntimeError, OSError):
            # Keep reading: a ``stop`` the carrier sent before it closed is still queued.
            self._send_failed = True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._ws.close(code, reason)
        except (RuntimeError, OSError):
            pass


@router.websocket("/twilio/media")
async def twilio_media(websocket: WebSocket) -> None:
    """One Twilio media stream (``<Connect><Stream url>``) = one call."""
    await _carry(websocket, TwilioCodec())


@router.websocket("/telnyx/media")
async def telnyx_media(websocket: WebSocket) -> None:
    """One Telnyx media stream (TeXML ``<Stream>`` / Call Control ``stream_url``) = one call."""
    services: Services = websocket.app.state.services
    settings = services.settings
    hang_up: HangUp | None = None
    if settings.telnyx_api_key:
        control = TelnyxCallControl(
            services.tools.client, api_key=settings.telnyx_api_key, api_url=settings.telnyx_api_url
        )

        async def hang_up(start: ev.CallStarted) -> None:
            if start.call_sid:
                await control.hang_up(start.call_sid, command_id=f"hangup-{start.stream_sid}")

    await _carry(websocket, TelnyxCodec(), hang_up=hang_up)


# (more carrier routes above this line)


async def _carry(
    websocket: WebSocket,
    codec: CarrierCodec,
    *,
    hang_up: HangUp | None = None,
    subprotocol: str | None = None,
) -> None:
    """Accept the carrier's websocket and run one call on it.

    The URL's query parameters become call parameters (below the ones the stream's start
    carries): carriers that can only configure a URL (Exotel, Asterisk) pick the agent with
    ``?agent=…``.
    """
    services: Services = websocket.app.state.services
    if services.tools.local_base is None:
        services.tools.local_base = local_base_url(websocket.scope.get("server"))
    call_id = new_call_id()
    await websocket.accept(subprotocol=subprotocol)
    socket = StarletteSocket(websocket)
    with admit(services, call_id, codec.carrier) as admitted:
        if not admitted:
            await socket.close(1013, "callbridge is at capacity")
            return
        runtime = CallRuntime(
            services,
            socket,
            codec,
            call_id=call_id,
            parameters=dict(websocket.query_params),
            hang_up=hang_up,
        )
        await runtime.run()
