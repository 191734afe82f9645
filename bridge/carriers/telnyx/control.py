"""Telnyx Call Control over REST: ending a call the agent decided to end.

Closing a Telnyx media stream does not end the call (the call just loses its stream), so when
the agent hangs up the bridge also asks Call Control: ``POST /v2/calls/{call_control_id}/actions
/hangup`` with the API key as a bearer token. A call already gone (``422``/``404``: the caller
hung up at the same moment: ``404``, or ``422`` with error code ``90018``) is not an error.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from bridge.errors import CarrierApiError

__all__ = ["TelnyxCallControl"]


class TelnyxCallControl:
    def __init__(self, http: httpx.AsyncClient, *, api_key: str, api_url: str) -> None:
        self._http = http
        self._api_key = api_key
        self._api_url = api_url.rstrip("/")

    async def hang_up(self, call_control_id: str, *, command_id: str | None = None) -> None:
        """Hang up the call; ``command_id`` makes retries idempotent at Telnyx."""
        url = f"{self._api_url}/v2/calls/{quote(call_control_id, safe='')}/actions/hangup"
        body = {"command_id": command_id} if command_id else {}
        try:
            response = await self._http.post(
                url, json=body, headers={"Authorization": f"Bearer {self._api_key}"}, timeout=5
            )
        except httpx.HTTPError as exc:
            raise CarrierApiError(f"Telnyx hang-up: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 404 or (
            response.status_code == 422 and "90018" in response.text  # "call has already ended"
        ):
            return
        if response.status_code >= 400:
            raise CarrierApiError(
                f"Telnyx hang-up: HTTP {response.status_code}: {response.text[:200]}"
            )
