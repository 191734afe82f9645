"""``/v1/campaigns``: dialer campaigns — a list of numbers called with an agent.

Create (``draft``), then ``start``; ``pause`` keeps the remaining numbers (in the database) and
``resume`` picks up where it stopped, after a restart too. A campaign that is running cannot be
started again (409). Reading needs ``read``; everything else ``write``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from bridge.api.auth import Reader, Writer
from bridge.api.errors import ERROR_RESPONSES, ErrorOut, invalid, store_errors
from bridge.errors import ConfigError
from bridge.journal.campaign_models import Campaign
from bridge.journal.campaigns import Aggregates, CampaignStore
from bridge.journal.models import E164
from bridge.runtime.campaigns import CallingWindow, CampaignDialer
from bridge.runtime.services import Services

__all__ = ["get_campaigns", "router"]

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], responses=ERROR_RESPONSES)

NumberStr = Annotated[str, Field(pattern=f"^{E164.pattern}$")]
VarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
Context = Annotated[
    dict[VarName, Annotated[str, StringConstraints(max_length=1000)]], Field(max_length=50)
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such campaign"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "Not allowed in the campaign's status"}
}


def get_campaigns(request: Request) -> CampaignStore:
    store = getattr(request.app.state, "campaigns", None)
    if not isinstance(store, CampaignStore):
        raise RuntimeError("app.state.campaigns is not set to a CampaignStore")
    return store


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: NumberStr
    context: Context = {}


class WindowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["09:00"])]
    end: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["18:00"])]
    timezone: Annotated[str, Field(max_length=64)] = "UTC"
    days: Annotated[list[Annotated[int, Field(ge=1, le=7)]], Field(min_length=1, max_length=7)] = [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
    ]

    def checked(self) -> dict[str, Any]:
        raw = self.model_dump()
        try:
            CallingWindow.parse(raw)
        except ValueError as exc:
            raise invalid(("body", "window"), str(exc)) from None
        return raw


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    agent: Annotated[str, Field(min_length=1, max_length=64)]
    numbers: Annotated[
        list[NumberStr | Contact],
        Field(min_length=1, max_length=10000, description="E.164 numbers, or {number, context}"),
    ]
    from_: Annotated[str | None, Field(alias="from", pattern=f"^{E164.pattern}$")] = None
    context: Context = {}
    max_concurrent: Annotated[int, Field(ge=1, le=100)] = 1
    max_attempts: Annotated[int, Field(ge=1, le=10, description="Calls per number at most")] = 1
    retry_on: list[Literal["busy", "no-answer"]] = ["busy", "no-answer"]
    retry_delay_s: Annotated[float, Field(ge=0, le=7 * 86400)] = 300.0
    window: WindowIn | None = Field(None, description="Dial only inside these local hours")
    machine_detection: Literal["off", "detect", "detect_message_end"] | None = None


class CampaignPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None
    max_concurrent: Annotated[int, Field(ge=1, le=100)] | None = None
    window: WindowIn | None = None

    @field_validator("name", "max_concurrent")
    @classmethod
    def not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class CampaignOut(BaseModel):
    id: str
    name: str
    agent: str
    from_number: str | None
    status: str
    status_reason: str | None
    context: dict[str, Any]
    max_concurrent: int
    max_attempts: int
    retry_on: list[str]
    retry_delay_s: float
    window: dict[str, Any] | None
    machine_detection: str | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    aggregates: Aggregates


class CampaignListOut(BaseModel):
    campaigns: list[CampaignOut]


class ContactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    position: int
    number: str
    context: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: AwareDatetime | None
    last_call_id: str | None
    outcome: str | None
    success: bool
    duration_secs: float


class ContactListOut(BaseModel):
    contacts: list[ContactOut]


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None
    end_reason: str | None


class RunListOut(BaseModel):
    runs: list[RunOut]


def _out(campaign: Campaign, totals: Aggregates) -> CampaignOut:
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        agent=campaign.agent,
        from_number=campaign.from_number,
        status=campaign.status,
        status_reason=campaign.status_reason,
        context=dict(campaign.context or {}),
        max_concurrent=campaign.max_concurrent,
        max_attempts=campaign.max_attempts,
        retry_on=list(campaign.retry_on or []),
        retry_delay_s=campaign.retry_delay_s,
        window=campaign.window,
        machine_detection=campaign.machine_detection,
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
        aggregates=totals,
    )


async def _one(store: CampaignStore, org: str, campaign_id: str) -> CampaignOut:
    with store_errors():
        campaign = await store.get(org, campaign_id)
        return _out(campaign, await store.aggregates(campaign.id))


@router.post("", status_code=201, response_model=CampaignOut, summary="Create a campaign (draft)")
async def create_campaign(body: CampaignIn, request: Request, principal: Writer) -> CampaignOut:
    services: Services = request.app.state.services
    store = get_campaigns(request)
    try:
        services.agents.get(body.agent, principal.org)
    except ConfigError as exc:
        raise invalid(("body", "agent"), str(exc), body.agent) from None
    if body.from_ is not None:
        control = services.control
        assert control is not None
        with store_errors():
            number = await control.org_number(principal.org, body.from_)
        if number is None:
            raise invalid(("body", "from"), "not one of the organization's numbers", body.from_)
    contacts = [
        (item, {}) if isinstance(item, str) else (item.number, dict(item.context))
        for item in body.numbers
    ]
    with store_errors():
        campaign = await store.create(
            principal.org,
            contacts,
            name=body.name,
            agent=body.agent,
            from_number=body.from_,
            context=dict(body.context),
            max_concurrent=body.max_concurrent,
            max_attempts=body.max_attempts,
            retry_on=list(body.retry_on),
            retry_delay_s=body.retry_delay_s,
            window=body.window.checked() if body.window else None,
            machine_detection=body.machine_detection,
        )
    return await _one(store, principal.org, campaign.id)


@router.get("", response_model=CampaignListOut, summary="List campaigns with their progress")
async def list_campaigns(request: Request, principal: Reader) -> CampaignListOut:
    store = get_campaigns(request)
    with store_errors():
        rows = await store.all(principal.org)
        return CampaignListOut(
            campaigns=[_out(row, await store.aggregates(row.id)) for row in rows]
        )


@router.get(
    "/{campaign_id}", response_model=CampaignOut, responses=NOT_FOUND, summary="One campaign"
)
async def get_campaign(campaign_id: str, request: Request, principal: Reader) -> CampaignOut:
    return await _one(get_campaigns(request), principal.org, campaign_id)


@router.patch(
    "/{campaign_id}",
    response_model=CampaignOut,
    responses=NOT_FOUND,
    summary="Rename a campaign, change its concurrency or calling window",
)
async def update_campaign(
    campaign_id: str, body: CampaignPatch, request: Request, principal: Writer
) -> CampaignOut:
    store = get_campaigns(request)
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        changes[name] = value.checked() if isinstance(value, WindowIn) else value
    with store_errors():
        await store.update(principal.org, campaign_id, **changes)
    _wake(request)
    return await _one(store, principal.org, campaign_id)


def _can_dial(request: Request) -> None:
    services: Services = request.app.state.services
    if not services.settings.public_url:
        raise HTTPException(409, detail="campaigns need CALLBRIDGE_PUBLIC_URL (Twilio calls back)")


def _wake(request: Request) -> None:
    dialer = getattr(request.app.state, "dialer", None)
    if isinstance(dialer, CampaignDialer):
        dialer.wake()


async def _transition(
    request: Request, org: str, campaign_id: str, *, allowed: tuple[str, ...], to: str, reason: str
) -> CampaignOut:
    store = get_campaigns(request)
    with store_errors():
        await store.transition(org, campaign_id, allowed_from=allowed, to=to, reason=reason)
    _wake(request)
    return await _one(store, org, campaign_id)


TRANSITION: dict[int | str, dict[str, Any]] = {**NOT_FOUND, **CONFLICT}


@router.post(
    "/{campaign_id}/start",
    response_model=CampaignOut,
    responses=TRANSITION,
    summary="Start a draft campaign (or resume a paused one)",
)
async def start_campaign(campaign_id: str, request: Request, principal: Writer) -> CampaignOut:
    _can_dial(request)
    return await _transition(
        request,
        principal.org,
        campaign_id,
        allowed=("draft", "paused"),
        to="running",
        reason="started",
    )


@router.post(
    "/{campaign_id}/resume",
    response_model=CampaignOut,
    responses=TRANSITION,
    summary="Resume a paused campaign where it stopped",
)
async def resume_campaign(campaign_id: str, request: Request, principal: Writer) -> CampaignOut:
    _can_dial(request)
    return await _transition(
        request, principal.org, campaign_id, allowed=("paused",), to="running", reason="resumed"
    )


@router.post(
    "/{campaign_id}/pause",
    response_model=CampaignOut,
    responses=TRANSITION,
    summary="Pause: no new calls; calls in progress go on",
)
async def pause_campaign(campaign_id: str, request: Request, principal: Writer) -> CampaignOut:
    return await _transition(
        request, principal.org, campaign_id, allowed=("running",), to="paused", reason="paused"
    )


@router.post(
    "/{campaign_id}/cancel",
    response_model=CampaignOut,
    responses=TRANSITION,
    summary="Cancel: the numbers not yet called are skipped",
)
async def cancel_campaign(campaign_id: str, request: Request, principal: Writer) -> CampaignOut:
    return await _transition(
        request,
        principal.org,
        campaign_id,
        allowed=("draft", "running", "paused"),
        to="canceled",
        reason="canceled",
    )


@router.get(
    "/{campaign_id}/contacts",
    response_model=ContactListOut,
    responses=NOT_FOUND,
    summary="The campaign's numbers and how each went",
)
async def list_contacts(campaign_id: str, request: Request, principal: Reader) -> ContactListOut:
    with store_errors():
        rows = await get_campaigns(request).contacts(principal.org, campaign_id)
    return ContactListOut(contacts=[ContactOut.model_validate(row) for row in rows])


@router.get(
    "/{campaign_id}/runs",
    response_model=RunListOut,
    responses=NOT_FOUND,
    summary="Each stretch the campaign ran, from start or resume to pause or completion",
)
async def list_runs(campaign_id: str, request: Request, principal: Reader) -> RunListOut:
    with store_errors():
        rows = await get_campaigns(request).runs(principal.org, campaign_id)
    return RunListOut(runs=[RunOut.model_validate(row) for row in rows])
