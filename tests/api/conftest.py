"""A tiny app with the calls router over a fresh SQLite journal, and a keyed client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bridge.api.auth import Authenticator
from bridge.api.calls import router as calls_router
from bridge.journal.control import ControlStore
from bridge.journal.store import JournalStore
from tests.auth import api_key, bearer
from tests.journal.conftest import sqlite_store


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[JournalStore]:
    async with sqlite_store(tmp_path / "journal.db") as store:
        yield store


@pytest.fixture
def app(journal: JournalStore) -> FastAPI:
    app = FastAPI()
    app.include_router(calls_router)
    app.state.journal = journal
    app.state.control = ControlStore(journal)
    app.state.auth = Authenticator(app.state.control, rate_per_minute=10_000)
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a read key of the default organization."""
    transport = httpx.ASGITransport(app=app)
    headers = bearer(await api_key(app, scope="read"))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as client:
        yield client
