"""A served bridge with fast webhook retries, and a webhook receiver that checks signatures.

The receiver is a real HTTP server on loopback (uvicorn + Starlette) that verifies every
request with :func:`bridge.tools.signing.verify` — the recipe the README gives receivers — and
can fail on purpose (answer 500) or be down (no server on its port at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.api.app import create_app
from bridge.config import Settings
from bridge.journal.ids import new_call_id
from bridge.journal.writer import JournalWriter
from bridge.session.actions import JournalToolCall, JournalTurn
from bridge.tools.signing import verify
from tests.auth import SECRET_KEY, api_key, bearer
from tests.servers import serve
from tests.waiting import until

ALL_EVENTS = ["call.started", "transcript.message", "tool.called", "call.ended"]
DIALOG = """
    engine = "pipeline"
    instructions = "A scripted stand-in."
    initial_message = "Hello, how can I help?"

    [dialog]
    fallback = "Sorry, I did not catch that."

    [[dialog.intents]]
    name = "bye"
    examples = ["goodbye"]
    reply = "Goodbye."
    end_call = true
"""
FIELDS = """
    [[collect_fields]]
    name = "caller_name"
    description = "The caller's name"

    [[collect_fields]]
    name = "reminder"
    description = "Whether the caller wants a reminder"
    type = "boolean"
"""
AGENTS = {
    "idle": 'engine = "openai_realtime"\ninstructions = "The default; never called here."',
    "front": DIALOG + FIELDS,  # summary on (it has collect_fields)
    "sales": DIALOG,  # no summary
    "acme-bot": 'organization = "acme"\n' + DIALOG,
}
FAST = {
    "webhook_backoff_s": 0.05,
    "webhook_backoff_max_s": 0.4,
    "webhook_poll_s": 0.1,
    "webhook_timeout_s": 3.0,
}


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    status: int
    signed: bool


@dataclass
class Receiver:
    """Answers ``status`` after ``fail_first`` requests answered 500; keeps everything."""

    secret: str = ""
    fail_first: int = 0
    status: int = 200
    requests: list[Received] = field(default_factory=list)

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def events(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """The bodies it accepted (of one call), in arrival order."""
        return [r.body for r in self.accepted if call_id is None or r.body["call_id"] == call_id]

    def types(self, call_id: str) -> list[str]:
        return [body["type"] for body in self.events(call_id)]

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            raw = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            signed = verify(
                self.secret,
                headers.get("x-callbridge-timestamp", ""),
                headers.get("x-callbridge-signature", ""),
                raw,
                now=time.time(),
            )
            status = 500 if len(self.requests) < self.fail_first else self.status
            if not signed:
                status = 401
            self.requests.append(
                Received(json.loads(raw), headers, time.monotonic(), status, signed)
            )
            return Response(status_code=status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve_on(app: Any, port: int) -> AsyncIterator[None]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined,unused-ignore]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("receiver did not start")
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``receiver``; yield its URL."""
    port = port or free_port()
    async with serve_on(receiver.app(), port):
        yield f"http://127.0.0.1:{port}/hook"


@dataclass
class Bridge:
    app: Any
    http: httpx.AsyncClient

    @property
    def writer(self) -> JournalWriter:
        writer: JournalWriter = self.app.state.services.journal
        return writer

    async def key(self, org: str = "default", scope: str = "admin") -> dict[str, str]:
        return bearer(await api_key(self.app, org, scope))

    async def subscribe(
        self, url: str, *, org: str = "default", events: list[str] | None = None, **more: Any
    ) -> dict[str, Any]:
        body = {"url": url, "events": events or ALL_EVENTS, **more}
        response = await self.http.post("/v1/webhooks", json=body, headers=await self.key(org))
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def deliveries(self, webhook_id: str, org: str = "default") -> list[dict[str, Any]]:
        response = await self.http.get(
            f"/v1/webhooks/{webhook_id}/deliveries?limit=500", headers=await self.key(org, "read")
        )
        assert response.status_code == 200, response.text
        return list(response.json()["deliveries"])

    async def call(self, call_id: str, org: str = "default") -> dict[str, Any]:
        await self.writer.flush()
        response = await self.http.get(f"/v1/calls/{call_id}", headers=await self.key(org, "read"))
        assert response.status_code == 200, response.text
        return dict(response.json())

    def fake_call(
        self, *, org: str = "default", agent: str = "front", turns: int = 2, end: bool = True
    ) -> str:
        """Journal a call straight through the writer: start, ``turns`` turns, a tool call,
        end (the post-call step then sends call.ended)."""
        call_id = new_call_id()
        started = datetime.now(UTC)
        writer = self.writer
        writer.call_started(
            call_id,
            carrier="twilio",
            started_at=started,
            org_id=org,
            agent=agent,
            from_number="+15550001111",
        )
        for n in range(turns):
            role = "agent" if n % 2 == 0 else "user"
            writer.record(call_id, JournalTurn(role, f"turn {n}", float(n)))
        writer.record(call_id, JournalToolCall("t1", "lookup", {"n": 1}, "{}", True, 9.0, 12.0))
        if end:
            writer.call_finished(
                call_id,
                status="completed",
                end_reason="caller hung up",
                ended_at=started + timedelta(seconds=10),
            )
        return call_id


def write_agents(root: Path, agents: dict[str, str] | None = None) -> tuple[Path, Path]:
    agents_dir, prompts_dir = root / "agents", root / "prompts"
    agents_dir.mkdir(exist_ok=True)
    prompts_dir.mkdir(exist_ok=True)
    for name, text in (agents or AGENTS).items():
        (agents_dir / f"{name}.toml").write_text(textwrap.dedent(text))
    return agents_dir, prompts_dir


def settings_for(root: Path, **overrides: Any) -> Settings:
    agents_dir, prompts_dir = write_agents(root, overrides.pop("agents", None))
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{root / 'journal.db'}",
        "agents_dir": agents_dir,
        "prompts_dir": prompts_dir,
        "default_agent": "idle",  # no offline recogniser to warm up
        "secret_keys": (SECRET_KEY,),
        "rate_limit_per_minute": 100_000,
        **FAST,
        **overrides,
    }
    return Settings(**values)


@contextlib.asynccontextmanager
async def running(root: Path, **overrides: Any) -> AsyncIterator[Bridge]:
    app = create_app(settings_for(root, **overrides), env={})
    async with (
        serve(app) as hostport,
        httpx.AsyncClient(base_url=f"http://{hostport}", timeout=10) as http,
    ):
        yield Bridge(app, http)


async def until_types(
    receiver: Receiver, call_id: str, count: int, limit_s: float = 10.0
) -> list[str]:
    """Wait until ``receiver`` accepted ``count`` events of the call; return their types."""
    what = f"{count} events of call {call_id} (so far: {receiver.types(call_id)})"
    try:
        await until(lambda: len(receiver.types(call_id)) >= count, limit_s, what)
    except AssertionError as exc:
        seen = [(r.body["call_id"], r.body["type"], r.status) for r in receiver.requests]
        raise AssertionError(f"{exc}; received: {seen}") from None
    return receiver.types(call_id)


async def eventually(
    check: Callable[[], Awaitable[object]], limit_s: float = 10.0, what: str = ""
) -> None:
    """:func:`tests.waiting.until` for a check that has to await (an API request)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what or check}")
        await asyncio.sleep(0.02)
