"""``/v1/numbers`` and ``/v1/routing-rules``: the organization's phone numbers and which agent
answers each.

A number is *imported*: an existing provider number (Twilio first) attached to the
organization, with a label, an active flag, an inbound agent and an outbound-only flag. A
number belongs to one organization (attaching it again is a 409). Routing rules refine the
inbound agent: per number, the first active rule (lowest ``priority``) whose ``caller_prefix``
the caller's number starts with picks the agent and adds context variables; with no match the
number's ``inbound_agent`` answers. Changing rules needs the admin scope.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bridge.api.auth import Admin, Reader, Writer
from bridge.api.errors import ERROR_RESPONSES, ErrorOut, invalid, store_errors
from bridge.api.keys import Control
from bridge.errors import ConfigError
from bridge.journal.models import E164
from bridge.runtime.services import Services

__all__ = ["numbers_router", "routing_router"]

E164_PATTERN = f"^{E164.pattern}$"
Number = Annotated[
    str,
    Field(
        pattern=E164_PATTERN, description="E.164: + and 7 to 15 digits", examples=["+15005550006"]
    ),
]
Label = Annotated[str, Field(max_length=200)]
AgentName = Annotated[str, Field(min_length=1, max_length=100)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Not in this organization"}
}

numbers_router = APIRouter(prefix="/v1/numbers", tags=["numbers"], responses=ERROR_RESPONSES)
routing_router = APIRouter(prefix="/v1/routing-rules", tags=["routing"], responses=ERROR_RESPONSES)


def check_agent(request: Request, org: str, name: str | None, field: str = "inbound_agent") -> None:
    """422 unless ``name`` is one of ``org``'s agents (``None`` passes)."""
    if name is None:
        return
    services: Services = request.app.state.services
    try:
        services.agents.get(name, org)
    except ConfigError as exc:
        raise invalid(("body", field), str(exc), name) from None


# --- numbers -------------------------------------------------------------------------------


class NumberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: Number
    provider: Annotated[str, Field(pattern="^(twilio)$")] = "twilio"
    provider_sid: Annotated[str | None, Field(max_length=64)] = None
    label: Label | None = None
    active: bool = True
    inbound_agent: AgentName | None = None
    outbound_only: bool = False


class NumberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Label | None = None
    active: bool | None = None
    inbound_agent: AgentName | None = None
    outbound_only: bool | None = None


class NumberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    number: str
    provider: str
    provider_sid: str | None
    label: str | None
    active: bool
    inbound_agent: str | None
    outbound_only: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime


class NumberListOut(BaseModel):
    numbers: list[NumberOut]


@numbers_router.get("", response_model=NumberListOut, summary="List the organization's numbers")
async def list_numbers(principal: Reader, control: Control) -> NumberListOut:
    with store_errors():
        rows = await control.list_numbers(principal.org)
    return NumberListOut(numbers=[NumberOut.model_validate(row) for row in rows])


@numbers_router.post(
    "",
    response_model=NumberOut,
    status_code=201,
    summary="Import (attach) a provider number",
    responses={409: {"model": ErrorOut, "description": "The number is already attached"}},
)
async def import_number(
    body: NumberIn, request: Request, principal: Writer, control: Control
) -> NumberOut:
    check_agent(request, principal.org, body.inbound_agent)
    with store_errors(conflict=f"number {body.number} is already attached"):
        row = await control.add_number(principal.org, **body.model_dump())
    return NumberOut.model_validate(row)


@numbers_router.get(
    "/{number_id}", response_model=NumberOut, summary="One number", responses=NOT_FOUND
)
async def get_number(number_id: str, principal: Reader, control: Control) -> NumberOut:
    with store_errors():
        row = await control.get_number(principal.org, number_id)
    return NumberOut.model_validate(row)


@numbers_router.patch(
    "/{number_id}",
    response_model=NumberOut,
    summary="Label, (de)activate, set the inbound agent or the outbound-only flag",
    responses=NOT_FOUND,
)
async def update_number(
    number_id: str, body: NumberPatch, request: Request, principal: Writer, control: Control
) -> NumberOut:
    changes = body.model_dump(exclude_unset=True)
    for flag in ("active", "outbound_only"):
        if flag in changes and changes[flag] is None:
            raise invalid(("body", flag), f"{flag} must be true or false")
    check_agent(request, principal.org, changes.get("inbound_agent"))
    with store_errors():
        row = await control.update_number(principal.org, number_id, **changes)
    return NumberOut.model_validate(row)


@numbers_router.delete(
    "/{number_id}", status_code=204, summary="Detach a number", responses=NOT_FOUND
)
async def delete_number(number_id: str, principal: Writer, control: Control) -> Response:
    with store_errors():
        await control.delete_number(principal.org, number_id)
    return Response(status_code=204)


# --- routing rules -------------------------------------------------------------------------


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: Number
    agent: AgentName
    context: dict[str, str] = Field(
        default_factory=dict, description="Variables for the agent's prompt"
    )
    caller_prefix: Annotated[
        str | None,
        Field(pattern=r"^\+[0-9]{0,15}$", description="Only callers whose number starts so"),
    ] = None
    priority: Annotated[int, Field(ge=0, le=1_000_000)] = 100
    active: bool = True


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: AgentName | None = None
    context: dict[str, str] | None = None
    caller_prefix: Annotated[str | None, Field(pattern=r"^\+[0-9]{0,15}$")] = None
    priority: Annotated[int | None, Field(ge=0, le=1_000_000)] = None
    active: bool | None = None


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    number: str
    agent: str
    context: dict[str, Any]
    caller_prefix: str | None
    priority: int
    active: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime


class RuleListOut(BaseModel):
    rules: list[RuleOut]


async def _check_number(control: Control, org: str, number: str) -> None:
    with store_errors():
        attached = await control.org_number(org, number)
    if attached is None:
        raise invalid(
            ("body", "number"), f"number {number} is not attached to this organization", number
        )


@routing_router.get("", response_model=RuleListOut, summary="List routing rules")
async def list_rules(
    principal: Reader, control: Control, number: Number | None = None
) -> RuleListOut:
    with store_errors():
        rows = await control.list_rules(principal.org, number)
    return RuleListOut(rules=[RuleOut.model_validate(row) for row in rows])


@routing_router.post("", response_model=RuleOut, status_code=201, summary="Add a routing rule")
async def create_rule(
    body: RuleIn, request: Request, principal: Admin, control: Control
) -> RuleOut:
    check_agent(request, principal.org, body.agent, "agent")
    await _check_number(control, principal.org, body.number)
    with store_errors():
        row = await control.add_rule(principal.org, **body.model_dump())
    return RuleOut.model_validate(row)


@routing_router.get("/{rule_id}", response_model=RuleOut, summary="One rule", responses=NOT_FOUND)
async def get_rule(rule_id: str, principal: Reader, control: Control) -> RuleOut:
    with store_errors():
        row = await control.get_rule(principal.org, rule_id)
    return RuleOut.model_validate(row)


@routing_router.patch(
    "/{rule_id}", response_model=RuleOut, summary="Change a routing rule", responses=NOT_FOUND
)
async def update_rule(
    rule_id: str, body: RulePatch, request: Request, principal: Admin, control: Control
) -> RuleOut:
    changes = body.model_dump(exclude_unset=True)
    for field in ("agent", "priority", "active"):
        if field in changes and changes[field] is None:
            raise invalid(("body", field), f"{field} cannot be null")
    if changes.get("context") is None:
        changes.pop("context", None)
    check_agent(request, principal.org, changes.get("agent"), "agent")
    with store_errors():
        row = await control.update_rule(principal.org, rule_id, **changes)
    return RuleOut.model_validate(row)


@routing_router.delete(
    "/{rule_id}", status_code=204, summary="Delete a routing rule", responses=NOT_FOUND
)
async def delete_rule(rule_id: str, principal: Admin, control: Control) -> Response:
    with store_errors():
        await control.delete_rule(principal.org, rule_id)
    return Response(status_code=204)
