"""Carrier media websockets: one route per carrier protocol, one call per stream."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from bridge.carriers.asterisk.codec import AsteriskCodec
from bridge.carriers.base import CarrierCodec
from bridge.carriers.exotel.codec import ExotelCodec
from bridge.carriers.jambonz.codec import SUBPROTOCOLS, JambonzCodec
from bridge.carriers.plivo.codec import PlivoCodec
from bridge.carriers.plivo.control import PlivoCallControl
from bridge.carriers.telnyx.codec import TelnyxCodec
from bridge.carriers.telnyx.control import TelnyxCallControl
from bridge.carriers.twilio.codec import TwilioCodec
from bridge.carriers.vonage.codec import VonageCodec
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


@router.websocket("/plivo/media")
async def plivo_media(websocket: WebSocket) -> None:
    """One Plivo audio stream (``<Stream bidirectional="true">``) = one call.

    With Plivo credentials set, a call the agent ends is hung up over Plivo's REST API (the
    stream has no in-band hang-up).
    """

    services: Services = websocket.app.state.services
    settings = services.settings
    hang_up: HangUp | None = None
    if settings.plivo_auth_id and settings.plivo_auth_token:
        control = PlivoCallControl(
            services.tools.client,
            auth_id=settings.plivo_auth_id,
            auth_token=settings.plivo_auth_token,
            api_url=settings.plivo_api_url,
        )

        async def hang_up(start: ev.CallStarted) -> None:
            if start.call_sid:
                await control.hang_up(start.call_sid)

    await _carry(websocket, PlivoCodec(), hang_up=hang_up)


@router.websocket("/exotel/media")
async def exotel_media(websocket: WebSocket) -> None:
    """One Exotel Voicebot applet stream = one call.

    The applet can only configure a URL: ``?sample-rate=8000|16000|24000`` and up to three
    custom parameters (``?agent=…``) ride in its query. Exotel has no hang-up for the stream:
    closing the socket ends the applet and the flow moves on to the next one.
    """

    await _carry(websocket, ExotelCodec(websocket.query_params.get("sample-rate")))


@router.websocket("/asterisk/media")
async def asterisk_media(websocket: WebSocket) -> None:
    """One Asterisk ``chan_websocket`` connection (``Dial(WebSocket/<client>/c(ulaw))``) = one call.

    Asterisk offers subprotocol ``media`` (accepted when offered). The agent comes from
    ``?agent=…`` (the ``websocket_client.conf`` URI or ``v(agent=demo)`` in the dial string)
    or, with the JSON control format, from a channel variable. The agent's hang-up is the
    in-band ``HANGUP``.
    """

    offered = websocket.scope.get("subprotocols") or []
    await _carry(websocket, AsteriskCodec(), subprotocol="media" if "media" in offered else None)


@router.websocket("/vonage/media")
async def vonage_media(websocket: WebSocket) -> None:
    """One Vonage Voice API websocket (NCCO ``connect`` to a ``websocket`` endpoint) = one call.

    Vonage has no in-band hang-up: when the agent ends the call the bridge closes the socket,
    which ends the ``connect`` action (and the call, when it is the NCCO's last action).
    """

    await _carry(websocket, VonageCodec())


@router.websocket("/jambonz/media")
async def jambonz_media(websocket: WebSocket) -> None:
    """One jambonz ``listen`` stream (bidirectional, streaming) = one call.

    jambonz offers the subprotocol ``audio.jambonz.org`` (``audio.drachtio.org`` from an
    unconfigured ``mod_audio_fork``) and the bridge selects it. A client offering neither is
    still served, with no subprotocol — selecting one it did not offer would fail its
    handshake — and a warning is logged.
    """

    offered = list(websocket.scope.get("subprotocols") or [])
    chosen = next((name for name in SUBPROTOCOLS if name in offered), None)
    if chosen is None:
        log.warning("jambonz stream without subprotocol %s (offered: %s)", SUBPROTOCOLS[0], offered)
    await _carry(websocket, JambonzCodec(), subprotocol=chosen)


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
