"""Real servers on loopback for end-to-end tests: the bridge app and a tool-webhook service."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bridge.tools.signing import verify


@contextlib.asynccontextmanager
async def serve(app: Any, *, ws: str = "websockets-sansio") -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) for the duration; yield ``host:port``."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        ws=ws,
        ws_per_message_deflate=False,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.01)
    (sock,) = [s for srv in server.servers for s in srv.sockets][:1]
    host, port = sock.getsockname()[:2]
    try:
        yield f"{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@dataclass
class ToolService:
    """A webhook receiver that checks callbridge's signature and answers per tool."""

    secret: str
    delay_s: dict[str, float] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/tools/{name}")
        async def tool(name: str, request: Request) -> JSONResponse:
            body = await request.body()
            ok = verify(
                self.secret,
                request.headers.get("x-callbridge-timestamp", ""),
                request.headers.get("x-callbridge-signature", ""),
                body,
                now=__import__("time").time(),
            )
            if not ok:
                self.bad_signatures += 1
                return JSONResponse({"error": "bad signature"}, status_code=401)
            payload = json.loads(body)
            self.calls.append(payload)
            await asyncio.sleep(self.delay_s.get(name, 0.0))
            if name == "lookup_order":
                order = payload["arguments"].get("order_id", "")
                return JSONResponse({"order_id": order, "status": "shipped", "eta": "Friday"})
            return JSONResponse({"error": f"no tool {name}"}, status_code=404)

        return app
