"""``/v1/keys``: the organization's API keys (admin scope). A key is shown once, at creation."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bridge.api.auth import Admin, get_authenticator
from bridge.api.errors import ERROR_RESPONSES, ErrorOut, store_errors
from bridge.journal.control import ControlStore
from bridge.journal.models import ApiKey
from bridge.secrets import hash_api_key, new_api_key

__all__ = ["get_control", "issue_key", "router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=ERROR_RESPONSES)

Scope = Literal["read", "write", "admin"]


def get_control(request: Request) -> ControlStore:
    control = getattr(request.app.state, "control", None)
    if not isinstance(control, ControlStore):
        raise RuntimeError("app.state.control is not set to a ControlStore")
    return control


Control = Annotated[ControlStore, Depends(get_control)]


async def issue_key(
    control: ControlStore, org: str, *, name: str, scope: str
) -> tuple[ApiKey, str]:
    """Create an API key for ``org``: its row and the key itself (not stored, shown once)."""
    key = new_api_key()
    row = await control.create_key(
        org, name=name, scope=scope, key_hash=hash_api_key(key), last4=key[-4:]
    )
    return row, key


class KeyIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    scope: Scope = "read"


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    scope: Scope
    last4: str = Field(description="The key's last four characters")
    created_at: AwareDatetime
    last_used_at: AwareDatetime | None
    revoked_at: AwareDatetime | None


class NewKeyOut(KeyOut):
    key: str = Field(description="The API key. Shown only now: store it.")


class KeyListOut(BaseModel):
    keys: list[KeyOut]


@router.get("", response_model=KeyListOut, summary="List the organization's API keys")
async def list_keys(principal: Admin, control: Control) -> KeyListOut:
    with store_errors():
        rows = await control.list_keys(principal.org)
    return KeyListOut(keys=[KeyOut.model_validate(row) for row in rows])


@router.post("", response_model=NewKeyOut, status_code=201, summary="Create an API key")
async def create_key(body: KeyIn, principal: Admin, control: Control) -> NewKeyOut:
    with store_errors():
        row, key = await issue_key(control, principal.org, name=body.name, scope=body.scope)
    return NewKeyOut(**KeyOut.model_validate(row).model_dump(), key=key)


@router.delete(
    "/{key_id}",
    response_model=KeyOut,
    summary="Revoke an API key",
    responses={404: {"model": ErrorOut, "description": "No such key in this organization"}},
)
async def revoke_key(key_id: str, request: Request, principal: Admin, control: Control) -> KeyOut:
    with store_errors():
        row = await control.revoke_key(principal.org, key_id)
    get_authenticator(request).forget(row.id)
    return KeyOut.model_validate(row)
