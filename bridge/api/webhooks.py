"""``/v1/webhooks``: event-webhook subscriptions and their deliveries.

A subscription sends the organization's call events — ``call.started``, ``transcript.message``,
``tool.called``, ``call.ended`` (with the post-call summary and collected fields) — to an
http(s) URL, for every call of the organization or only one agent's. Each request is signed
with the subscription's own secret (:mod:`bridge.webhooks.payload`), which is generated at
creation, returned **once** in that response, and stored encrypted with the server's secret
key. Events wait in a durable outbox and are retried with backoff
(:mod:`bridge.webhooks.deliverer`); ``GET …/deliveries`` shows each one's state, attempts and
last error, and a ``dead`` one can be sent again.

Scopes: reading needs ``read``; creating, changing, deleting and re-sending need ``admin`` (a
subscription sends transcripts out of the organization).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from bridge.api.auth import Admin, Reader
from bridge.api.background import run_workers
from bridge.api.calls import Journal
from bridge.api.credentials import get_secrets
from bridge.api.errors import ERROR_RESPONSES, ErrorOut, invalid, store_errors
from bridge.api.numbers import check_agent
from bridge.journal.subscriptions import WebhookStore
from bridge.secrets import last4

__all__ = ["SECRET_PREFIX", "get_webhooks", "router"]

router = APIRouter(
    prefix="/v1/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES, lifespan=run_workers
)
"""Its lifespan runs the deliverer and the post-call runner (:mod:`bridge.api.background`)."""

SECRET_PREFIX = "whsec_"
EventType = Literal["call.started", "transcript.message", "tool.called", "call.ended"]
DeliveryState = Literal["pending", "delivered", "dead"]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Not in this organization"}
}
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        raise ValueError("must be an http or https URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or value != value.strip():
        raise ValueError("must be an http or https URL")
    if any(char.isspace() or ord(char) < 32 for char in value):
        raise ValueError("must be an http or https URL")
    return value


Url = Annotated[
    str,
    Field(min_length=8, max_length=2000, examples=["https://example.com/hooks/callbridge"]),
    AfterValidator(_http_url),
]
Events = Annotated[list[EventType], Field(min_length=1, max_length=8)]
AgentName = Annotated[str, Field(min_length=1, max_length=100)]
Description = Annotated[str, Field(max_length=200)]


def get_webhooks(journal: Journal) -> WebhookStore:
    return WebhookStore(journal)


Webhooks = Annotated[WebhookStore, Depends(get_webhooks)]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    events: Events = Field(description="Event types to send")
    agent: AgentName | None = Field(
        default=None, description="Only this agent's calls (else every call of the organization)"
    )
    active: bool = True
    description: Description | None = None


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    events: Events | None = None
    agent: AgentName | None = None
    active: bool | None = None
    description: Description | None = None


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str]
    agent: str | None
    active: bool
    description: str | None
    secret_last4: str = Field(description="The signing secret's last four characters")
    created_at: AwareDatetime
    updated_at: AwareDatetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="The signing secret: shown only in this response")


class WebhookListOut(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: str
    type: str
    call_id: str
    agent: str | None
    state: str = Field(description="pending, delivered or dead")
    attempts: int
    next_attempt_at: AwareDatetime
    last_status: int | None = Field(description="The receiver's HTTP status at the last attempt")
    last_error: str | None
    created_at: AwareDatetime
    delivered_at: AwareDatetime | None
    data: dict[str, Any]


class DeliveryListOut(BaseModel):
    deliveries: list[DeliveryOut]


def _unique(events: list[EventType]) -> list[str]:
    return list(dict.fromkeys(events))


def _wake_deliverer(request: Request) -> None:
    background = getattr(request.app.state, "background", None)
    if background is not None:
        background.deliverer.wake()


@router.get("", response_model=WebhookListOut, summary="List the organization's webhooks")
async def list_webhooks(principal: Reader, webhooks: Webhooks) -> WebhookListOut:
    with store_errors():
        rows = await webhooks.subscriptions(principal.org)
    return WebhookListOut(webhooks=[WebhookOut.model_validate(row) for row in rows])


@router.post(
    "",
    response_model=WebhookCreatedOut,
    status_code=201,
    summary="Subscribe a URL to call events (the signing secret is shown once)",
)
async def create_webhook(
    body: WebhookIn, request: Request, principal: Admin, webhooks: Webhooks
) -> WebhookCreatedOut:
    check_agent(request, principal.org, body.agent, "agent")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    sealed = get_secrets(request).seal(secret.encode("utf-8"))
    with store_errors():
        row = await webhooks.add(
            principal.org,
            url=body.url,
            events=_unique(body.events),
            agent=body.agent,
            active=body.active,
            description=body.description,
            sealed_secret=sealed,
            secret_last4=last4(secret),
        )
    return WebhookCreatedOut(**WebhookOut.model_validate(row).model_dump(), secret=secret)


@router.get("/{webhook_id}", response_model=WebhookOut, summary="One webhook", responses=NOT_FOUND)
async def get_webhook(webhook_id: str, principal: Reader, webhooks: Webhooks) -> WebhookOut:
    with store_errors():
        row = await webhooks.get(principal.org, webhook_id)
    return WebhookOut.model_validate(row)


@router.patch(
    "/{webhook_id}",
    response_model=WebhookOut,
    summary="Change the URL, events, agent filter, description, or (de)activate",
    responses=NOT_FOUND,
)
async def update_webhook(
    webhook_id: str, body: WebhookPatch, request: Request, principal: Admin, webhooks: Webhooks
) -> WebhookOut:
    changes = body.model_dump(exclude_unset=True)
    for field in ("url", "events", "active"):
        if field in changes and changes[field] is None:
            raise invalid(("body", field), f"{field} cannot be null")
    if "events" in changes:
        changes["events"] = _unique(changes["events"])
    check_agent(request, principal.org, changes.get("agent"), "agent")
    with store_errors():
        row = await webhooks.update(principal.org, webhook_id, **changes)
    return WebhookOut.model_validate(row)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Delete a webhook (its undelivered events with it)",
    responses=NOT_FOUND,
)
async def delete_webhook(webhook_id: str, principal: Admin, webhooks: Webhooks) -> Response:
    with store_errors():
        await webhooks.delete(principal.org, webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryListOut,
    summary="The webhook's deliveries, newest first: state, attempts, last error",
    responses=NOT_FOUND,
)
async def list_deliveries(  # noqa: PLR0917 (FastAPI injects each by name)
    webhook_id: str,
    principal: Reader,
    webhooks: Webhooks,
    state: DeliveryState | None = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Only deliveries older than this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryListOut:
    with store_errors():
        rows = await webhooks.deliveries(
            principal.org, webhook_id, state=state, before_id=before_id, limit=limit
        )
    return DeliveryListOut(deliveries=[DeliveryOut.model_validate(row) for row in rows])


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    summary="Send a dead delivery again (its attempts start afresh)",
    responses=NOT_FOUND,
)
async def retry_delivery(
    webhook_id: str, delivery_id: RowId, request: Request, principal: Admin, webhooks: Webhooks
) -> DeliveryOut:
    with store_errors():
        row = await webhooks.redeliver(principal.org, webhook_id, delivery_id, datetime.now(UTC))
    _wake_deliverer(request)
    return DeliveryOut.model_validate(row)
