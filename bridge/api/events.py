"""``WS /v1/events``: the organization's journal as it happens, for dashboards and integrations.

One JSON text message per journal submission of any of the organization's calls, as the writer
takes it (before the database write):

* ``{"type": "status", "call_id", "status", …}`` — a call started (``in-progress``), changed
  status (``ringing`` → ``in-progress``, Twilio's progress), or ended (``"final": true`` with
  ``end_reason``);
* ``{"type": "turn" | "event" | "tool_call", "call_id", …}`` — a new journal row, with the
  fields ``GET /v1/calls/{id}`` gives it.

Filters in the query: ``call_id`` (one call), ``types`` (comma-separated). The key goes in the
``Authorization: Bearer`` header of the upgrade request (read scope); without a valid one the
upgrade is refused with 401/403. A client that does not keep up is sent ``{"type":
"overflow"}`` and closed (1013): it should resync from ``GET /v1/calls?since_id=…``. A comment
message ``{"type": "ping"}`` after 20 s of quiet keeps idle proxies from closing the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from bridge.api.auth import Principal, get_authenticator
from bridge.journal.feed import Message, Subscription
from bridge.runtime.services import Services

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

PING_S = 20.0
TYPES = frozenset({"status", "turn", "event", "tool_call"})


async def _authenticate(websocket: WebSocket) -> Principal | None:
    """The caller's principal; ``None`` after refusing the upgrade."""
    header = websocket.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not key:
            raise HTTPException(401, detail="missing API key (Authorization: Bearer …)")
        return await get_authenticator(websocket).authenticate(key.strip())
    except HTTPException as exc:
        await _refuse(websocket, exc.status_code, str(exc.detail), exc.headers)
        return None


async def _refuse(
    websocket: WebSocket, status: int, detail: str, headers: Mapping[str, str] | None = None
) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = JSONResponse({"detail": detail}, status_code=status, headers=dict(headers or {}))
        await websocket.send_denial_response(response)
    else:  # the server cannot answer an upgrade with HTTP: close before accepting (403)
        await websocket.close(code=1008, reason=detail[:120])


@router.websocket("/v1/events")
async def events(websocket: WebSocket) -> None:
    principal = await _authenticate(websocket)
    if principal is None:
        return
    query = websocket.query_params
    wanted = TYPES
    if query.get("types"):
        wanted = frozenset(t.strip() for t in query["types"].split(",") if t.strip())
        if not wanted <= TYPES:
            unknown = ", ".join(sorted(wanted - TYPES))
            known = "status, turn, event, tool_call"
            await _refuse(websocket, 422, f"unknown types: {unknown} (known: {known})")
            return
    only_call = query.get("call_id")
    services: Services = websocket.app.state.services
    feed = services.journal.feed
    org = principal.org

    def accepts(message: Message) -> bool:
        if message.get("type") not in wanted and message.get("type") != "overflow":
            return False
        call_id = message.get("call_id")
        if only_call is not None and call_id != only_call:
            return False
        return feed.org_of(str(call_id)) == org

    await websocket.accept()
    with feed.subscribe(None, where=accepts) as subscription:
        closed = asyncio.create_task(_until_closed(websocket))
        try:
            await _send(websocket, subscription, closed)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away mid-send
        finally:
            closed.cancel()


async def _send(
    websocket: WebSocket, subscription: Subscription, closed: asyncio.Task[None]
) -> None:
    messages = aiter(subscription)
    pending: asyncio.Future[Message] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(messages))
            waiting: set[asyncio.Future[Any]] = {pending, closed}
            done, _ = await asyncio.wait(
                waiting, timeout=PING_S, return_when=asyncio.FIRST_COMPLETED
            )
            if closed in done:
                return
            if pending not in done:
                await websocket.send_text('{"type":"ping"}')
                continue
            try:
                message = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            await websocket.send_text(orjson.dumps(message).decode())
            if message["type"] == "overflow":
                await websocket.close(1013, "too slow: resync from GET /v1/calls")
                return
    finally:
        if pending is not None:
            pending.cancel()


async def _until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends until it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
