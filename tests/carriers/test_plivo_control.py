"""Plivo REST hang-up client against ``httpx.MockTransport``: the request it makes, and how
each answer (204, 404, errors, redirects, a dead network) comes out."""

from __future__ import annotations

import base64

import httpx
import pytest

from bridge.carriers.plivo.control import PlivoCallControl
from bridge.errors import CarrierApiError

AUTH_ID, TOKEN = "MAZDQ1ZJIYMDZKMMZKYM", "secret-token"


def control(handler: httpx.MockTransport) -> tuple[PlivoCallControl, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=handler)
    return PlivoCallControl(
        http, auth_id=AUTH_ID, auth_token=TOKEN, api_url="https://api.plivo.test/"
    ), http


async def test_hang_up_sends_an_authenticated_delete() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    ctl, http = control(httpx.MockTransport(answer))
    async with http:
        await ctl.hang_up("4e5d33b6-4b1f/x")
    (request,) = seen
    assert request.method == "DELETE"
    assert str(request.url) == (
        f"https://api.plivo.test/v1/Account/{AUTH_ID}/Call/4e5d33b6-4b1f%2Fx/"
    )
    basic = base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {basic}"
    assert request.content == b""


async def test_a_call_already_gone_is_not_an_error() -> None:
    ctl, http = control(
        httpx.MockTransport(lambda r: httpx.Response(404, json={"error": "not found"}))
    )
    async with http:
        await ctl.hang_up("gone")


@pytest.mark.parametrize(
    ("status", "message"),
    [(401, "HTTP 401"), (500, "HTTP 500: boom"), (307, "HTTP 307")],
)
async def test_failures_raise_carrier_api_errors(status: int, message: str) -> None:
    ctl, http = control(httpx.MockTransport(lambda r: httpx.Response(status, text="boom")))
    async with http:
        with pytest.raises(CarrierApiError, match=message):
            await ctl.hang_up("c1")


async def test_network_errors_are_translated() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    ctl, http = control(httpx.MockTransport(fail))
    async with http:
        with pytest.raises(CarrierApiError, match="Plivo hang-up: ConnectError: refused"):
            await ctl.hang_up("c1")
