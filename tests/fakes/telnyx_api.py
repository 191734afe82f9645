"""A fake Telnyx Call Control API: the ``actions/hangup`` command the bridge uses.

Request bodies are validated against the ``telnyx`` SDK's own ``ActionHangupParams`` (no key it
does not know, each of the right type) and answered with its ``ActionHangupResponse`` shape; a
wrong bearer key gets Telnyx's 401 error body, a call already hung up gets 422 with error code
90018, as Telnyx answers. The SDK's ``AsyncTelnyx`` client works against it (see its test).
"""

from __future__ import annotations

import typing
import warnings
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from telnyx.types.calls.action_hangup_params import ActionHangupParams
    from telnyx.types.calls.action_hangup_response import ActionHangupResponse

HANGUP_FIELDS = typing.get_type_hints(ActionHangupParams)


def _error(status: int, code: str, title: str, detail: str) -> JSONResponse:
    body = {"errors": [{"code": code, "title": title, "detail": detail}]}
    return JSONResponse(body, status_code=status)


@dataclass
class FakeTelnyxApi:
    api_key: str
    live_calls: set[str] = field(default_factory=set)
    hangups: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fail_with: int | None = None  # answer every command with this HTTP status

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v2/calls/{call_control_id}/actions/hangup")
        async def hangup(call_control_id: str, request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return _error(401, "10009", "Authentication failed", "The API key is wrong.")
            body = await request.json()
            if not isinstance(body, dict):
                self.problems.append(f"body is not an object: {body!r}")
                return _error(422, "10015", "Invalid request", "Body must be an object.")
            unknown = set(body) - set(HANGUP_FIELDS)
            bad_types = [
                k
                for k in ("command_id", "client_state", "reason")
                if k in body and not isinstance(body[k], str)
            ]
            if unknown or bad_types:
                self.problems.append(f"hangup body {body!r}: unknown {unknown}, bad {bad_types}")
                return _error(422, "10015", "Invalid parameter", f"{sorted(unknown)} {bad_types}")
            if self.fail_with is not None:
                return _error(self.fail_with, "10007", "Unexpected error", "Try again later.")
            self.hangups.append((call_control_id, body))
            if call_control_id not in self.live_calls:
                return _error(
                    422, "90018", "Call has already ended", "This call is no longer active."
                )
            self.live_calls.discard(call_control_id)
            result = ActionHangupResponse.model_validate({"data": {"result": "ok"}})
            return JSONResponse(result.model_dump(mode="json"))

        return app
