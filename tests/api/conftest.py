"""A tiny app with the calls router over a fresh SQLite journal, and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bridge.api.calls import router as calls_router
from bridge.journal.store import JournalStore
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
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
