"""REST read access to the call journal: ``GET /v1/calls`` and ``GET /v1/calls/{call_id}``.

The store is ``app.state.journal`` (a :class:`~bridge.journal.store.JournalStore`), reached through
the :func:`get_journal` dependency so tests and other apps can override it. Every route depends on
:func:`authorize`, the seam where authentication will go; today it lets every request through.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bridge.journal.store import JournalError, JournalStore

__all__ = ["CallDetailOut", "CallListOut", "CallOut", "authorize", "get_journal", "router"]

CALL_ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"


def authorize() -> None:
    """Authentication seam: replace (or override in ``app.dependency_overrides``) to guard."""


def get_journal(request: Request) -> JournalStore:
    journal = getattr(request.app.state, "journal", None)
    if not isinstance(journal, JournalStore):
        raise RuntimeError("app.state.journal is not set to a JournalStore")
    return journal


Journal = Annotated[JournalStore, Depends(get_journal)]

router = APIRouter(prefix="/v1/calls", tags=["calls"], dependencies=[Depends(authorize)])


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the store's dataclasses


class CallOut(_Out):
    id: str
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


class NotFoundOut(BaseModel):
    detail: str


def _unavailable(exc: JournalError) -> HTTPException:
    # 503 says "try again later" only when that can help; the message carries no row data.
    return HTTPException(status_code=503 if exc.retryable else 500, detail=exc.message)


@router.get("", response_model=CallListOut, summary="List journaled calls")
async def list_calls(
    *,
    journal: Journal,
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
            agent=agent,
            status=status,
            started_after=started_after,
            started_before=started_before,
            since_id=since_id,
            call_sid=call_sid,
            limit=limit,
        )
    except JournalError as exc:
        raise _unavailable(exc) from exc
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
async def get_call(call_id: str, journal: Journal) -> CallDetailOut:
    try:
        detail = await journal.get_call(call_id)
    except JournalError as exc:
        raise _unavailable(exc) from exc
    if detail is None:
        raise HTTPException(status_code=404, detail="call not found")
    return CallDetailOut(
        **CallOut.model_validate(detail.call).model_dump(),
        transcript=[TurnOut.model_validate(turn) for turn in detail.transcript],
        events=[EventOut.model_validate(event) for event in detail.events],
        tool_calls=[ToolCallOut.model_validate(call) for call in detail.tool_calls],
    )
