"""``/v1/credentials``: the organization's provider credentials, encrypted at rest.

One credential per provider (``PUT`` sets or replaces it). The fields are sealed with the
server's secret key (Fernet) before they reach the database; the API never returns them, only
each field's last four characters. Reading the list needs ``read``, changing it ``admin``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bridge.api.auth import Admin, Reader
from bridge.api.errors import ERROR_RESPONSES, ErrorOut, invalid, store_errors
from bridge.api.keys import Control
from bridge.journal.control import ControlStore
from bridge.secrets import SecretBox, last4

__all__ = ["PROVIDER_FIELDS", "credential_fields", "router"]

router = APIRouter(prefix="/v1/credentials", tags=["credentials"], responses=ERROR_RESPONSES)

Provider = Literal["twilio", "openai", "elevenlabs", "deepgram"]
PROVIDER_FIELDS: dict[str, tuple[str, ...]] = {
    "twilio": ("account_sid", "auth_token"),
    "openai": ("api_key",),
    "elevenlabs": ("api_key",),
    "deepgram": ("api_key",),
}
Secret = Annotated[str, Field(min_length=8, max_length=512)]


class CredentialIn(BaseModel):
    """The provider's fields: ``account_sid`` + ``auth_token`` (Twilio), ``api_key`` (others)."""

    model_config = ConfigDict(extra="forbid")

    account_sid: Annotated[str, Field(pattern=r"^AC[0-9a-fA-F]{32}$")] | None = None
    auth_token: Secret | None = None
    api_key: Secret | None = None


class CredentialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    provider: str
    hints: dict[str, str] = Field(description="Each field's last four characters")
    created_at: AwareDatetime
    updated_at: AwareDatetime


class CredentialListOut(BaseModel):
    credentials: list[CredentialOut]


def get_secrets(request: Request) -> SecretBox:
    box = getattr(request.app.state, "secrets", None)
    if not isinstance(box, SecretBox):
        raise RuntimeError("app.state.secrets is not set to a SecretBox")
    return box


async def credential_fields(
    control: ControlStore, box: SecretBox, org: str, provider: str
) -> dict[str, str] | None:
    """``org``'s decrypted credential for ``provider``, or ``None`` if it stored none."""
    return await control.credential_fields(org, provider, box)


@router.get("", response_model=CredentialListOut, summary="List stored credentials (hints only)")
async def list_credentials(principal: Reader, control: Control) -> CredentialListOut:
    with store_errors():
        rows = await control.list_credentials(principal.org)
    return CredentialListOut(credentials=[CredentialOut.model_validate(row) for row in rows])


@router.put(
    "/{provider}",
    response_model=CredentialOut,
    summary="Store (or replace) a provider credential",
    responses={201: {"model": CredentialOut, "description": "Stored for the first time"}},
)
async def put_credential(  # noqa: PLR0917 (FastAPI injects each by name)
    provider: Provider,
    body: CredentialIn,
    request: Request,
    response: Response,
    principal: Admin,
    control: Control,
) -> CredentialOut:
    given = body.model_dump(exclude_none=True)
    wanted = PROVIDER_FIELDS[provider]
    if set(given) != set(wanted):
        raise invalid(("body",), f"{provider} needs exactly: {', '.join(wanted)}")
    box = get_secrets(request)
    sealed = box.seal(orjson.dumps(given))
    hints = {name: last4(value) for name, value in given.items()}
    with store_errors():
        row, created = await control.put_credential(
            principal.org, provider, sealed=sealed, hints=hints
        )
    if created:
        response.status_code = 201
    return CredentialOut.model_validate(row)


@router.delete(
    "/{provider}",
    status_code=204,
    summary="Delete a provider credential",
    responses={404: {"model": ErrorOut, "description": "None stored for this provider"}},
)
async def delete_credential(provider: Provider, principal: Admin, control: Control) -> Response:
    with store_errors():
        await control.delete_credential(principal.org, provider)
    return Response(status_code=204)
