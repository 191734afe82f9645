"""The FastAPI application: media websockets, the journal's read API, health."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bridge import __version__
from bridge.agents.loader import AgentRegistry
from bridge.agents.model import Agent
from bridge.api import agents as agents_api
from bridge.api import calls, demo, media, webrtc
from bridge.api.audiosocket import start_audiosocket_listener
from bridge.api.console import mount_console
from bridge.api.webrtc import end_browser_calls
from bridge.config import Settings
from bridge.engines.pipeline.local_stt import warm_up as warm_up_recogniser
from bridge.journal.store import JournalStore
from bridge.journal.writer import JournalWriter
from bridge.runtime.engines import ENGINE_FACTORIES, EngineFactory
from bridge.runtime.services import Services
from bridge.tools.webhook import ToolDispatcher

log = logging.getLogger(__name__)


def uses_local_stt(agent: Agent) -> bool:
    """The agent's engine recognises speech with pocketsphinx (worth warming up at start)."""
    return agent.engine == "pipeline" and (agent.stt is None or agent.stt.provider == "local")


def create_app(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    engine_factories: Mapping[str, EngineFactory] | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> FastAPI:
    """Build the app. Agents load and the journal opens when the app starts (lifespan)."""
    environ = dict(os.environ if env is None else env)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        agents = AgentRegistry.from_dir(
            settings.agents_dir, settings.prompts_dir, environ, settings.default_agent
        )
        store = await JournalStore.open(settings.database_url)
        writer = JournalWriter(store)
        await writer.start()
        client = http_client or httpx.AsyncClient()
        app.state.journal = store
        app.state.browser_calls = {}  # task → its BrowserPeer
        app.state.services = Services(
            settings=settings,
            agents=agents,
            journal=writer,
            tools=ToolDispatcher(client),
            engine_factories=dict(engine_factories or ENGINE_FACTORIES),
        )
        log.info("callbridge %s ready: agents %s", __version__, ", ".join(agents.names()))
        audiosocket = None
        if settings.audiosocket_port is not None:
            audiosocket = await start_audiosocket_listener(app.state.services)
            app.state.audiosocket_address = audiosocket.sockets[0].getsockname()[:2]
            log.info("AudioSocket listener on %s:%d", *app.state.audiosocket_address)
        warming = None
        # The recogniser process costs ≈150 MB: start it early only for agents likely to answer
        # (the default one, and fallbacks, which must take over fast); others start it cold.
        likely = {agents.default_name} | {
            a.fallback for a in map(agents.get, agents.names()) if a.fallback
        }
        if any(uses_local_stt(agents.get(name)) for name in likely if name in agents):
            warming = asyncio.create_task(warm_up_recogniser())
        # Everything loaded so far lives as long as the process: move it out of the collector's
        # sight. Full collections then walk only per-call objects (measured: 45-106 ms stalls of
        # every live call at 50-200 calls without this, 14-22 ms with it).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if warming is not None:
                warming.cancel()
            await end_browser_calls(app.state.browser_calls)
            if audiosocket is not None:
                audiosocket.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(audiosocket.wait_closed(), 5)
            await writer.close()
            if http_client is None:
                await client.aclose()
            await store.close()

    app = FastAPI(
        title="callbridge",
        version=__version__,
        summary="Realtime AI voice-agent bridge: phone audio in, agent engine out, every call "
        "journaled.",
        lifespan=lifespan,
    )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> dict[str, object]:
        services: Services = request.app.state.services
        return {
            "status": "ok",
            "version": __version__,
            "live_calls": len(services.live_calls),
            "max_calls": services.settings.max_calls,
        }

    app.include_router(calls.router, tags=["calls"])
    app.include_router(agents_api.router)
    app.include_router(webrtc.router)
    app.include_router(media.router)
    app.include_router(demo.router)
    mount_console(app)
    return app
