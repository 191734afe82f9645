"""Plivo's Voice REST API: ending a call the agent decided to end.

A Plivo audio stream has no in-band hang-up, and closing it only hands the call to the next
XML element (``keepCallAlive="true"``), so when the agent hangs up the bridge also asks the REST
API: ``DELETE /v1/Account/{auth_id}/Call/{call_uuid}/`` with HTTP Basic auth (Auth ID and Auth
Token). Plivo answers ``204 No Content``. A call already gone (``404``: the caller hung up at
the same moment) is not an error.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from bridge.errors import CarrierApiError

__all__ = ["PlivoCallControl"]


class PlivoCallControl:
    def __init__(
        self, http: httpx.AsyncClient, *, auth_id: str, auth_token: str, api_url: str
    ) -> None:
        self._http = http
        self._auth = httpx.BasicAuth(auth_id, auth_token)
        self._account_url = f"{api_url.rstrip('/')}/v1/Account/{quote(auth_id, safe='')}"

    async def hang_up(self, call_uuid: str) -> None:
        """Hang up the call (``callId`` of the stream's ``start``)."""
        url = f"{self._account_url}/Call/{quote(call_uuid, safe='')}/"
        try:
            response = await self._http.delete(url, auth=self._auth, timeout=5)
        except httpx.HTTPError as exc:
            raise CarrierApiError(f"Plivo hang-up: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 404:  # already ended
            return
        if not response.is_success:  # a redirect too: the DELETE did not happen
            raise CarrierApiError(
                f"Plivo hang-up: HTTP {response.status_code}: {response.text[:200]}"
            )
