"""ToolDispatcher against a real HTTP server on 127.0.0.1 (uvicorn + FastAPI, in-process).

The server verifies the signature the way a user's webhook receiver would, from the raw body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from bridge.agents.model import Agent, ToolSpec
from bridge.tools import SIGNATURE_HEADER, TIMESTAMP_HEADER, ToolDispatcher, verify

SECRET = "live-test-secret"
SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}}}


def build_app(release: asyncio.Event) -> FastAPI:
    app = FastAPI()

    @app.post("/tools/lookup_order")
    async def lookup_order(request: Request) -> Response:
        body = await request.body()  # the raw bytes: verify before parsing
        if not verify(
            SECRET,
            request.headers.get(TIMESTAMP_HEADER, ""),
            request.headers.get(SIGNATURE_HEADER, ""),
            body,
            now=time.time(),
        ):
            return Response(status_code=401)
        payload = json.loads(body)
        order_id = payload["arguments"]["order_id"]
        return Response(
            json.dumps({"order_id": order_id, "status": "shipped", "call": payload["call_id"]}),
            media_type="application/json",
        )

    @app.post("/tools/slow")
    async def slow() -> Response:
        await release.wait()
        return Response("too late", media_type="text/plain")

    return app


@pytest.fixture
async def server_url() -> AsyncIterator[str]:
    release = asyncio.Event()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        build_app(release),
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        http="h11",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # surface a startup failure
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)
        sock.close()


def agent_for(base_url: str, *, secret: str | None = SECRET, timeout_s: float = 2.0) -> Agent:
    tools = (
        ToolSpec("lookup_order", "Find an order.", SCHEMA, f"{base_url}/tools/lookup_order"),
        ToolSpec("slow", "Never answers in time.", SCHEMA, f"{base_url}/tools/slow", timeout_s),
    )
    return Agent(name="support", tools=tools, tool_secret=secret)


async def test_signed_round_trip_and_hanging_webhook(server_url: str) -> None:
    async with httpx.AsyncClient() as client:
        dispatcher = ToolDispatcher(client)

        outcome = await dispatcher.run(
            agent=agent_for(server_url),
            call_id="CA9",
            tool_call_id="tc_9",
            name="lookup_order",
            arguments={"order_id": "B42"},
        )
        assert outcome.ok, outcome
        assert outcome.status_code == 200
        assert json.loads(outcome.output) == {"order_id": "B42", "status": "shipped", "call": "CA9"}

        unsigned = await dispatcher.run(
            agent=agent_for(server_url, secret="not-the-server-secret"),
            call_id="CA9",
            tool_call_id="tc_10",
            name="lookup_order",
            arguments={"order_id": "B42"},
        )
        assert not unsigned.ok
        assert unsigned.status_code == 401

        started = time.monotonic()
        late = await dispatcher.run(
            agent=agent_for(server_url, timeout_s=0.3),
            call_id="CA9",
            tool_call_id="tc_11",
            name="slow",
            arguments={},
        )
        elapsed = time.monotonic() - started
        assert not late.ok
        assert json.loads(late.output) == {"error": "tool 'slow': no reply within 0.3 s"}
        assert 0.25 <= elapsed < 1.5
        assert 250 <= late.duration_ms < 1500


async def test_connection_refused() -> None:
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as client:
        outcome = await ToolDispatcher(client).run(
            agent=agent_for(f"http://127.0.0.1:{port}"),
            call_id="CA9",
            tool_call_id="tc_12",
            name="lookup_order",
            arguments={"order_id": "B42"},
        )
    assert not outcome.ok
    assert outcome.error == "tool 'lookup_order': could not connect to the webhook"
