"""Journal stores for tests: SQLite in a temporary file, PostgreSQL in a schema of its own.

PostgreSQL is at ``CALLBRIDGE_TEST_POSTGRES_URL`` (an asyncpg URL), by default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``. Each test gets a fresh schema (dropped
afterwards) through the connections' ``search_path``, so test runs can share the database. When the
server cannot be reached the test is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bridge.journal.store import JournalStore

POSTGRES_URL = os.environ.get(
    "CALLBRIDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
CONNECT_TIMEOUT_SECS = 5
_postgres_unreachable: list[str] = []  # the reason, once a connection failed


def _postgres_missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason)


@contextlib.asynccontextmanager
async def sqlite_store(path: Path) -> AsyncIterator[JournalStore]:
    store = await JournalStore.open(f"sqlite+aiosqlite:///{path}")
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def postgres_store() -> AsyncIterator[JournalStore]:
    if _postgres_unreachable:
        _postgres_missing(_postgres_unreachable[0])
    schema = f"journal_test_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(POSTGRES_URL, connect_args={"timeout": CONNECT_TIMEOUT_SECS})
    try:
        try:
            async with admin.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        except (OSError, sa_exc.SQLAlchemyError) as exc:
            where = make_url(POSTGRES_URL).render_as_string(hide_password=True)
            _postgres_unreachable.append(f"PostgreSQL at {where} is unreachable: {exc!r}")
            _postgres_missing(_postgres_unreachable[0])
        connect_args = {"server_settings": {"search_path": schema}}
        store = await JournalStore.open(
            POSTGRES_URL,
            engine_options={"connect_args": connect_args | {"timeout": CONNECT_TIMEOUT_SECS}},
        )
        try:
            yield store
        finally:
            await store.close()
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


@contextlib.asynccontextmanager
async def open_store(backend: str, tmp_path: Path) -> AsyncIterator[JournalStore]:
    if backend == "sqlite":
        async with sqlite_store(tmp_path / "journal.db") as store:
            yield store
    else:
        async with postgres_store() as store:
            yield store


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[JournalStore]:
    """A fresh, empty journal on each backend."""
    async with open_store(backend, tmp_path) as journal:
        yield journal


@pytest.fixture
async def sqlite_journal(tmp_path: Path) -> AsyncIterator[JournalStore]:
    """A fresh SQLite journal, for tests where the backend does not matter."""
    async with sqlite_store(tmp_path / "journal.db") as journal:
        yield journal
