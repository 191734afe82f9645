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
from bridge.api import (
    calls,
    campaigns,
    control,
    credentials,
    demo,
    events,
    keys,
    media,
    numbers,
    recordings,
    twilio_hooks,
    webhooks,
    webrtc,
)
from bridge.api.audiosocket import start_audiosocket_listener
from bridge.api.auth import Authenticator
from bridge.api.console import mount_console
from bridge.api.webrtc import end_browser_calls
from bridge.carriers.twilio.rest import HttpxTwilioClient
from bridge.config import Settings
from bridge.engines.pipeline.local_stt import warm_up as warm_up_recogniser
from bridge.journal.campaigns import CampaignStore
from bridge.journal.control import ControlStore
from bridge.journal.models import DEFAULT_ORG
from bridge.journal.outbox import Outbox
from bridge.journal.store import Conflict, JournalStore
from bridge.journal.writer import JournalWriter
from bridge.runtime.campaigns import CampaignDialer
from bridge.runtime.engines import ENGINE_FACTORIES, EngineFactory
from bridge.runtime.services import Services
from bridge.secrets import SecretBox, hash_api_key, new_api_key
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
    twilio_http: httpx.AsyncClient | None = None,
) -> FastAPI:
    """Build the app. Agents load and the journal opens when the app starts (lifespan)."""
    environ = dict(os.environ if env is None else env)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        agents = AgentRegistry.from_dir(
            settings.agents_dir, settings.prompts_dir, environ, settings.default_agent
        )
        secrets = SecretBox(load_secret_keys(settings))
        store = await JournalStore.open(settings.database_url)
        control = ControlStore(store)
        await control.ensure_org(DEFAULT_ORG)
        app.state.bootstrap_key = await bootstrap_key(control)
        # webhook events and post-call jobs ride the writer's transactions (api/webhooks.py
        # runs their workers)
        writer = JournalWriter(store, outbox=Outbox(store))
        await writer.start()
        client = http_client or httpx.AsyncClient()
        app.state.journal = store
        app.state.control = control
        app.state.secrets = secrets
        app.state.auth = Authenticator(control, rate_per_minute=settings.rate_limit_per_minute)
        app.state.browser_calls = {}  # task → its BrowserPeer
        app.state.services = Services(
            settings=settings,
            agents=agents,
            journal=writer,
            tools=ToolDispatcher(client),
            engine_factories=dict(engine_factories or ENGINE_FACTORIES),
            control=control,
            secrets=secrets,
            twilio_http=HttpxTwilioClient(twilio_http or client),
        )
        dialing = _start_dialer(app, CampaignStore(store, control), settings)
        log.info("callbridge %s ready: agents %s", __version__, ", ".join(agents.names()))
        audiosocket = None
        if settings.audiosocket_port is not None:
            audiosocket = await start_audiosocket_listener(app.state.services)
            app.state.audiosocket_address = audiosocket.sockets[0].getsockname()[:2]
            log.info("AudioSocket listener on %s:%d", *app.state.audiosocket_address)
        warming = _warm_up(agents)
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
            await _stop(dialing)
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
        # Keep the exception's headers: WWW-Authenticate on 401, Retry-After on 429.
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> dict[str, object]:
        services: Services = request.app.state.services
        return {
            "status": "ok",
            "version": __version__,
            "live_calls": len(services.live_calls),
            "max_calls": services.settings.max_calls,
        }

    _include_routers(app)
    return app


def _include_routers(app: FastAPI) -> None:
    app.include_router(control.router)  # before calls: POST /v1/calls is a dial
    app.include_router(campaigns.router)
    app.include_router(calls.router, tags=["calls"])
    app.include_router(recordings.router)
    app.include_router(agents_api.router)
    app.include_router(webrtc.router)
    app.include_router(keys.router)
    app.include_router(numbers.numbers_router)
    app.include_router(numbers.routing_router)
    app.include_router(credentials.router)
    app.include_router(twilio_hooks.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(media.router)
    app.include_router(demo.router)
    mount_console(app)


def _warm_up(agents: AgentRegistry) -> asyncio.Task[None] | None:
    """The recogniser process costs ≈150 MB: start it early only for agents likely to answer
    (the default one, and fallbacks, which must take over fast); others start it cold."""
    likely = {agents.default_name} | {
        a.fallback for a in map(agents.get, agents.names()) if a.fallback
    }
    if any(uses_local_stt(agents.get(name)) for name in likely if name in agents):
        return asyncio.create_task(warm_up_recogniser())
    return None


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _start_dialer(app: FastAPI, campaigns: CampaignStore, settings: Settings) -> asyncio.Task[None]:
    """The campaign dialer of this worker (campaigns are leased: one worker dials each)."""
    app.state.campaigns = campaigns
    app.state.dialer = CampaignDialer(
        app.state.services,
        campaigns,
        base_url=lambda: settings.public_url,
        tick_s=settings.campaign_tick_s,
    )
    return asyncio.create_task(app.state.dialer.run())


def load_secret_keys(settings: Settings) -> list[str]:
    """``CALLBRIDGE_SECRET_KEY``, else the key file — created (mode 0600) on first start, so the
    embedded default needs no set-up. Losing the file loses the stored credentials."""
    if settings.secret_keys:
        return list(settings.secret_keys)
    path = settings.secret_key_file
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SecretBox.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    log.warning("created secret key file %s (keep it: stored credentials need it)", path)
    return [key]


BOOTSTRAP_KEY_ID = "0" * 26


async def bootstrap_key(control: ControlStore) -> str | None:
    """A fresh journal has no API key: make one admin key for the default organization and log
    it once, so a new install can be used at all. (Several workers race for the fixed id; one
    wins.) Returns the key, or ``None`` when keys exist."""
    if await control.count_keys():
        return None
    key = new_api_key()
    try:
        await control.create_key(
            DEFAULT_ORG,
            name="bootstrap",
            scope="admin",
            key_hash=hash_api_key(key),
            last4=key[-4:],
            key_id=BOOTSTRAP_KEY_ID,
        )
    except Conflict:
        return None
    log.warning(
        "no API key existed: created admin key %s for organization %r. It is shown only now; "
        "`callbridge keys create` makes more, DELETE /v1/keys/%s revokes this one.",
        key,
        DEFAULT_ORG,
        BOOTSTRAP_KEY_ID,
    )
    return key
