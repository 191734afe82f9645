"""Twilio's REST API for calls, through the ``twilio`` package: dial out, redirect, hang up.

The package builds the requests (parameter names, list encoding, the account path, basic auth)
and parses the answers into its own resources; :class:`HttpxTwilioClient` is the package's
``AsyncHttpClient`` interface over the bridge's shared ``httpx.AsyncClient`` — one HTTP stack,
one connection pool, and the same seam tests use (an ``httpx`` transport that is a fake Twilio).
Twilio's errors (``TwilioRestException``) and transport failures become :class:`CarrierApiError`
here, at the boundary, with Twilio's own code and message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from bridge.errors import CarrierApiError

__all__ = ["DialRequest", "HttpxTwilioClient", "TwilioCalls"]

log = logging.getLogger(__name__)

MACHINE_DETECTION = {"detect": "Enable", "detect_message_end": "DetectMessageEnd"}
"""Our names for Twilio's ``MachineDetection`` modes (``off`` sends none)."""
CALL_GONE = 21220
"""Twilio: "Call is not in-progress. Cannot redirect." — the call ended meanwhile."""


class HttpxTwilioClient(AsyncHttpClient):  # type: ignore[misc]  # (the package is untyped)
    """The ``twilio`` package's async HTTP interface over an ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient, *, timeout: float = 10.0) -> None:
        super().__init__(log, True, timeout)
        self._http = http

    async def request(  # noqa: PLR0917 (the package's interface)
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the package's interface)
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        response = await self._http.request(
            method.upper(),
            uri,
            params=_form(params),
            data=_form(data),
            headers=headers,
            auth=auth,
            timeout=timeout or self.timeout,
            follow_redirects=allow_redirects,
        )
        return TwilioResponse(response.status_code, response.text, response.headers)


def _form(values: Mapping[str, object] | None) -> dict[str, Any] | None:
    """Drop the package's unset markers; lists stay lists (repeated form keys)."""
    if values is None:
        return None
    return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class DialRequest:
    """One outbound call, in Twilio's terms (``TwiML`` given inline, no fetch of a URL)."""

    to: str
    from_: str
    twiml: str
    status_callback: str
    machine_detection: str = "off"
    """``off``, ``detect`` (human or machine as soon as known) or ``detect_message_end`` (for a
    machine, wait for the greeting's end: the moment to leave a message)."""
    amd_callback: str | None = None
    """Where Twilio posts the asynchronous machine-detection result."""
    timeout_s: int = 30
    """How long to let it ring."""
    status_events: Sequence[str] = ("initiated", "ringing", "answered", "completed")


class TwilioCalls:
    """Calls of one Twilio account."""

    def __init__(self, account_sid: str, auth_token: str, http: AsyncHttpClient) -> None:
        self.account_sid = account_sid
        self._client = Client(account_sid, auth_token, http_client=http)

    async def dial(self, request: DialRequest) -> str:
        """Place the call; its ``CallSid``."""
        amd: dict[str, Any] = {}
        if request.machine_detection != "off":
            amd = {
                "machine_detection": MACHINE_DETECTION[request.machine_detection],
                "async_amd": "true",
                "async_amd_status_callback": request.amd_callback,
                "async_amd_status_callback_method": "POST",
            }
        try:
            call = await self._client.calls.create_async(
                to=request.to,
                from_=request.from_,
                twiml=request.twiml,
                status_callback=request.status_callback,
                status_callback_method="POST",
                status_callback_event=list(request.status_events),
                timeout=request.timeout_s,
                **amd,
            )
        except (TwilioException, httpx.HTTPError) as exc:
            raise _error("dial", exc) from exc
        if not call.sid:
            raise CarrierApiError("Twilio dial: the answer has no call sid")
        return str(call.sid)

    async def redirect(self, call_sid: str, twiml: str) -> bool:
        """Replace what the call is doing with ``twiml``; False if the call is already over."""
        return await self._update(call_sid, "redirect", twiml=twiml)

    async def hang_up(self, call_sid: str) -> bool:
        """End the call; False if it was already over."""
        return await self._update(call_sid, "hang-up", status="completed")

    async def _update(self, call_sid: str, what: str, **changes: str) -> bool:
        try:
            await self._client.calls(call_sid).update_async(**changes)
        except TwilioRestException as exc:
            if exc.status == 404 or exc.code == CALL_GONE:
                return False
            raise _error(what, exc) from exc
        except (TwilioException, httpx.HTTPError) as exc:
            raise _error(what, exc) from exc
        return True


def _error(what: str, exc: Exception) -> CarrierApiError:
    if isinstance(exc, TwilioRestException):
        code = f" (error {exc.code})" if exc.code else ""
        return CarrierApiError(f"Twilio {what}: HTTP {exc.status}{code}: {exc.msg}")
    return CarrierApiError(f"Twilio {what}: {type(exc).__name__}: {exc}")
