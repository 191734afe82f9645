"""REST read access to the call journal: ``GET /v1/calls`` and ``GET /v1/calls/{call_id}``.

The store is ``app.state.journal`` (a :class:`~bridge.journal.store.JournalStore`), reached through
the :func:`get_journal` dependency so tests and other apps can override it. Every route needs an
API key with the ``read`` scope and sees only its organization's calls (another organization's
call is a 404, exactly like a missing one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bridge.api.auth import Reader
from bridge.api.errors import unavailable
from bridge.api.recordings import recording_url
from bridge.journal.feed import FINAL, JournalFeed, Message
from bridge.journal.models import CallDetail
from bridge.journal.store import JournalError, JournalStore

__all__ = ["CallDetailOut", "CallListOut", "CallOut", "get_journal", "router"]

CALL_ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"


def get_journal(request: Request) -> JournalStore:
    journal = getattr(request.app.state, "journal", None)
    if not isinstance(journal, JournalStore):
        raise RuntimeError("app.state.journal is not set to a JournalStore")
    return journal


Journal = Annotated[JournalStore, Depends(get_journal)]

router = APIRouter(prefix="/v1/calls", tags=["calls"])


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the store's dataclasses


class CallOut(_Out):
    id: str
    direction: str
    campaign_id: str | None
    carrier: str
    status: str
    agent: str | None
    call_sid: str | None
    stream_sid: str | None
    from_number: str | None
    to_number: str | None
    started_at: AwareDatetime
    ended_at: AwareDatetime | None
    duration_secs: float | None
    end_reason: str | None
    context: dict[str, Any]
    created_at: AwareDatetime
    updated_at: AwareDatetime


class CallListOut(BaseModel):
    calls: list[CallOut]
    next_since_id: str | None = Field(
        description="The greatest id in this page (null if empty): pass it as since_id to get "
        "only calls journaled after all of these."
    )


class TurnOut(_Out):
    role: str
    text: str
    time_in_call_secs: float
    interrupted: bool


class EventOut(_Out):
    kind: str
    time_in_call_secs: float
    data: dict[str, Any]


class ToolCallOut(_Out):
    tool_call_id: str = Field(validation_alias="call_id")
    name: str
    arguments: dict[str, Any]
    output: str
    ok: bool
    time_in_call_secs: float
    duration_ms: float


class CallDetailOut(CallOut):
    transcript: list[TurnOut]
    events: list[EventOut]
    tool_calls: list[ToolCallOut]
    summary: str | None = Field(
        default=None,
        description="The post-call summary (agents with `summary` on; null until it is made)",
    )
    collected: dict[str, Any] | None = Field(
        default=None,
        description="The agent's `collect_fields` extracted after the call (a field not "
        "established is null)",
    )
    recording_url: str | None = Field(
        default=None,
        description="The call's recording (once it has ended, if its agent records): a URL "
        "relative to this server that needs no API key, valid for an hour.",
    )


class NotFoundOut(BaseModel):
    detail: str


async def load_call(journal: JournalStore, call_id: str, org: str) -> CallDetail:
    """One call of ``org``'s journal, or the API's 404 / 503."""
    try:
        detail = await journal.get_call(call_id, org=org)
    except JournalError as exc:
        raise unavailable(exc) from exc
    if detail is None:
        raise HTTPException(status_code=404, detail="call not found")
    return detail


@router.get("", response_model=CallListOut, summary="List journaled calls")
async def list_calls(
    *,
    journal: Journal,
    principal: Reader,
    agent: str | None = None,
    status: str | None = None,
    started_after: Annotated[
        AwareDatetime | None, Query(description="ISO 8601 with offset; inclusive")
    ] = None,
    started_before: Annotated[
        AwareDatetime | None, Query(description="ISO 8601 with offset; exclusive")
    ] = None,
    since_id: Annotated[
        str | None,
        Query(
            pattern=CALL_ID_PATTERN,
            description="Only calls with a greater id, oldest first (delta paging)",
        ),
    ] = None,
    call_sid: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CallListOut:
    """Newest first; with ``since_id``, the calls after it in id (creation) order."""
    try:
        calls = await journal.list_calls(
            org=principal.org,
            agent=agent,
            status=status,
            started_after=started_after,
            started_before=started_before,
            since_id=since_id,
            call_sid=call_sid,
            limit=limit,
        )
    except JournalError as exc:
        raise unavailable(exc) from exc
    # The greatest id is the cursor: the last item with since_id, the first one newest-first.
    next_since_id = max((call.id for call in calls), default=None)
    return CallListOut(
        calls=[CallOut.model_validate(call) for call in calls], next_since_id=next_since_id
    )


@router.get(
    "/{call_id}",
    response_model=CallDetailOut,
    responses={404: {"model": NotFoundOut, "description": "No call with this id"}},
    summary="One call with its transcript, events and tool calls",
)
async def get_call(
    call_id: str, request: Request, journal: Journal, principal: Reader
) -> CallDetailOut:
    detail = await load_call(journal, call_id, principal.org)
    secrets = getattr(request.app.state, "secrets", None)
    return CallDetailOut(
        **CallOut.model_validate(detail.call).model_dump(),
        transcript=[TurnOut.model_validate(turn) for turn in detail.transcript],
        events=[EventOut.model_validate(event) for event in detail.events],
        tool_calls=[ToolCallOut.model_validate(call) for call in detail.tool_calls],
        summary=detail.call.summary,
        collected=None if detail.call.collected is None else dict(detail.call.collected),
        recording_url=recording_url(secrets, detail.call, time.time()),
    )


LIVE_HEARTBEAT_S = 15.0
"""A comment line this often keeps proxies from closing a quiet live stream."""
LIVE_START_WAIT_S = 5.0
"""How long the live stream of a call this worker carries waits for the call to start."""


def get_feed(request: Request) -> JournalFeed | None:
    services = getattr(request.app.state, "services", None)
    return None if services is None else services.journal.feed


@router.get(
    "/{call_id}/live",
    summary="A call's journal as it happens (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Events `status`, `turn`, `event`, `tool_call` (data: JSON, the "
            "fields of GET /v1/calls/{id}), from the call's start; the stream ends after the "
            "final `status`. A call this server is not carrying is replayed from the journal.",
        },
        404: {"model": NotFoundOut, "description": "No call with this id"},
    },
)
async def live_call(
    call_id: str,
    request: Request,
    journal: Journal,
    principal: Reader,
) -> StreamingResponse:
    feed = get_feed(request)
    services = getattr(request.app.state, "services", None)
    if feed is not None and services is not None and call_id in services.live_calls:
        # carried here but perhaps not started yet (the answer to a browser's offer comes
        # before the media's first frame): wait for its start rather than replay nothing
        await feed.wait_known(call_id, LIVE_START_WAIT_S)
    if feed is not None and feed.known(call_id) and feed.org_of(call_id) == principal.org:
        stream = _follow(feed, call_id, request)
    else:
        stream = _replay(await load_call(journal, call_id, principal.org))
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(message: Message) -> bytes:
    kind = str(message.get("type", "message"))
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(message) + b"\n\n"


async def _follow(feed: JournalFeed, call_id: str, request: Request) -> AsyncIterator[bytes]:
    with feed.subscribe(call_id) as subscription:
        messages = aiter(subscription)
        while True:
            try:
                message = await asyncio.wait_for(anext(messages), LIVE_HEARTBEAT_S)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield b": still here\n\n"
                continue
            except StopAsyncIteration:
                return
            yield _sse(message)
            if message.get(FINAL) or message["type"] == "overflow":
                return


async def _replay(detail: CallDetail) -> AsyncIterator[bytes]:
    """A call this worker is not carrying: its journal so far, then its status."""
    call = detail.call
    rows: list[tuple[float, Message]] = []
    for turn in detail.transcript:
        out = TurnOut.model_validate(turn).model_dump()
        rows.append((turn.time_in_call_secs, {"type": "turn", **out}))
    for event in detail.events:
        out = EventOut.model_validate(event).model_dump()
        rows.append((event.time_in_call_secs, {"type": "event", **out}))
    for tool in detail.tool_calls:
        out = ToolCallOut.model_validate(tool).model_dump()
        rows.append((tool.time_in_call_secs, {"type": "tool_call", **out}))
    rows.sort(key=lambda row: row[0])
    yield _sse({"type": "status", "call_id": call.id, "status": "in-progress"})
    for _, message in rows:
        message["call_id"] = call.id
        yield _sse(message)
    final = call.status != "in-progress"
    yield _sse(
        {
            "type": "status",
            "call_id": call.id,
            "status": call.status,
            "end_reason": call.end_reason,
            FINAL: final,
            "replayed": True,
        }
    )
