"""A call's recording over HTTP: ``GET /v1/calls/{call_id}/audio``, a stereo WAV file.

Two ways in:

* an API key (``read`` scope), which sees its own organization's calls only (another's is a 404,
  like a missing one);
* ``?token=``, a signed, expiring ``<call id>:<organization>`` (purpose ``audio``, see
  :class:`~bridge.secrets.SecretBox`) that a call's detail hands out in ``recording_url``, so the
  URL works where no header can be added: an ``<audio src>``, a download link. A token names one
  call: used for another it is a 403; forged or expired, a 401. It is checked instead of any key.

The file is served once the call has ended (it is complete then; 409 while the call goes on) by
starlette's ``FileResponse``, with byte ranges (``Range`` → 206, one range or several; a range
past the end → 416), which players use to seek.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bridge.api.auth import require
from bridge.api.errors import ERROR_RESPONSES, ErrorOut, unavailable
from bridge.journal.models import CallSummary
from bridge.journal.store import JournalError, JournalStore
from bridge.runtime.recording import RECORDING_NAME
from bridge.secrets import SecretBox

__all__ = ["RECORDING_TOKEN_PURPOSE", "RECORDING_URL_TTL_S", "recording_url", "router"]

RECORDING_TOKEN_PURPOSE = "audio"
RECORDING_URL_TTL_S = 3600
"""How long a ``recording_url`` works (seconds): long enough to listen, short enough to leak
little if it is copied somewhere."""

router = APIRouter(prefix="/v1/calls", tags=["calls"])

_bearer = HTTPBearer(auto_error=False, description="An API key: `callbridge keys create`")
_read = require("read")


def recording_url(secrets: SecretBox | None, call: CallSummary, now: float) -> str | None:
    """The relative URL of ``call``'s recording with a token valid for
    :data:`RECORDING_URL_TTL_S`; ``None`` if it has none (yet: the call must have ended)."""
    if secrets is None or call.recording is None or call.ended_at is None:
        return None
    token = secrets.sign(
        RECORDING_TOKEN_PURPOSE, f"{call.id}:{call.org_id}", int(now) + RECORDING_URL_TTL_S
    )
    return f"/v1/calls/{call.id}/audio?{urlencode({'token': token})}"


def _secrets(request: Request) -> SecretBox | None:
    secrets = getattr(request.app.state, "secrets", None)
    return secrets if isinstance(secrets, SecretBox) else None


def _recordings_dir(request: Request) -> Path | None:
    services = getattr(request.app.state, "services", None)
    return None if services is None else services.settings.recordings_dir


def _token_org(request: Request, call_id: str, token: str) -> str:
    """The organization a valid token for this call speaks for; 401 / 403 otherwise."""
    secrets = _secrets(request)
    payload = (
        None if secrets is None else secrets.verify(RECORDING_TOKEN_PURPOSE, token, time.time())
    )
    if payload is None or ":" not in payload:
        raise HTTPException(
            401,
            detail="recording token invalid or expired",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token_call, org = payload.split(":", 1)
    if token_call != call_id:
        raise HTTPException(403, detail="this recording token is for another call")
    return org


async def _call(request: Request, call_id: str, org: str) -> CallSummary:
    journal = getattr(request.app.state, "journal", None)
    if not isinstance(journal, JournalStore):
        raise RuntimeError("app.state.journal is not set to a JournalStore")
    try:
        detail = await journal.get_call(call_id, org=org)
    except JournalError as exc:
        raise unavailable(exc) from exc
    if detail is None:
        raise HTTPException(404, detail="call not found")
    return detail.call


_AUDIO = {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}
_TEXT = {"text/plain": {"schema": {"type": "string"}}}


@router.get(
    "/{call_id}/audio",
    summary="A call's recording: stereo WAV, caller left, agent right",
    response_class=FileResponse,
    openapi_extra={"security": [{}]},  # added to the key: or no key at all, with ?token=
    responses={
        **ERROR_RESPONSES,
        200: {"content": _AUDIO, "description": "The recording (16-bit PCM)"},
        206: {
            "content": {**_AUDIO, "multipart/byteranges": {"schema": {"type": "string"}}},
            "description": "The byte range(s) asked for with `Range`",
        },
        400: {"content": _TEXT, "description": "A malformed `Range` header"},
        401: {
            "model": ErrorOut,
            "description": "No API key (or an unknown or revoked one) and no token, or a token "
            "that is forged or expired",
        },
        403: {
            "model": ErrorOut,
            "description": "The API key's scope is too low, or the token is for another call",
        },
        404: {
            "model": ErrorOut,
            "description": "No such call, another organization's, or a call without a recording",
        },
        409: {"model": ErrorOut, "description": "The call is still in progress"},
        416: {"content": _TEXT, "description": "A `Range` past the end of the file"},
    },
)
async def call_audio(
    call_id: str,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[
        str | None,
        Query(
            max_length=256,
            description="The signed token of the call's `recording_url` (instead of an API key)",
        ),
    ] = None,
) -> FileResponse:
    if token is not None:
        org = _token_org(request, call_id, token)
    else:
        org = (await _read(request, credentials)).org
    call = await _call(request, call_id, org)
    directory = _recordings_dir(request)
    name = call.recording
    if name is None or directory is None or not RECORDING_NAME.fullmatch(name):
        raise HTTPException(404, detail="this call has no recording")
    if call.ended_at is None:
        raise HTTPException(409, detail="the call is in progress: its recording comes at the end")
    path = directory / name
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        raise HTTPException(404, detail="this call's recording is no longer there")
    return FileResponse(
        path,
        media_type="audio/wav",
        stat_result=info,
        filename=f"{call.id}.wav",
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=3600"},
    )
