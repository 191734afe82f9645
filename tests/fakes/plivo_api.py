"""A fake Plivo Voice API: the ``DELETE …/Call/{call_uuid}/`` hang-up the bridge uses.

It checks what Plivo checks: HTTP Basic auth with the Auth ID and Auth Token, the Auth ID in the
path matching the credentials, the trailing slash Plivo's routes carry, no request body. It
answers as Plivo does: ``204 No Content`` for a live call, ``404`` with Plivo's JSON error body
for a call that is not (or no longer) live, ``401`` for bad credentials. ``fail_with`` answers
every hang-up with that status instead (a Plivo outage).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"api_id": str(uuid.uuid4()), "error": message}, status_code=status)


@dataclass
class FakePlivoApi:
    auth_id: str
    auth_token: str
    live_calls: set[str] = field(default_factory=set)
    hangups: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fail_with: int | None = None

    def app(self) -> FastAPI:
        app = FastAPI(redirect_slashes=False)
        basic = base64.b64encode(f"{self.auth_id}:{self.auth_token}".encode()).decode()

        @app.delete("/v1/Account/{auth_id}/Call/{call_uuid}/")
        async def hang_up(auth_id: str, call_uuid: str, request: Request) -> Response:
            if request.headers.get("authorization") != f"Basic {basic}":
                self.problems.append("hang-up without the account's Basic credentials")
                return _error(401, "Authentication credentials invalid")
            if auth_id != self.auth_id:
                self.problems.append(f"hang-up for another account {auth_id!r}")
                return _error(401, "Authentication credentials invalid")
            if await request.body():
                self.problems.append("hang-up with a request body")
            if self.fail_with is not None:
                return _error(self.fail_with, "internal error, try again later")
            self.hangups.append(call_uuid)
            if call_uuid not in self.live_calls:
                return _error(404, "not found")
            self.live_calls.discard(call_uuid)
            return Response(status_code=204)

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
        async def elsewhere(path: str, request: Request) -> Response:
            self.problems.append(f"unexpected {request.method} /{path}")
            return _error(404, "not found")

        return app
