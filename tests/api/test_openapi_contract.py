"""Schemathesis against the served OpenAPI schema: every documented operation, fuzzed with an
admin key, never answers a server error, and answers what its schema says.

The app runs for real (uvicorn on loopback, in a thread of its own: schemathesis calls it
synchronously), with the repository's agents and a fresh SQLite journal.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from bridge.api.app import create_app
from bridge.config import Settings
from tests.auth import SECRET_KEY, bearer
from tests.servers import serve

ROOT = Path(__file__).resolve().parents[2]


class _Server:
    def __init__(self, tmp: Path) -> None:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp / 'journal.db'}",
            agents_dir=ROOT / "agents",
            prompts_dir=ROOT / "prompts",
            default_agent="default",  # no local recogniser to warm up
            secret_keys=(SECRET_KEY,),
            rate_limit_per_minute=1_000_000,
        )
        self.app = create_app(settings, env={})
        self.hostport = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), daemon=True)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self.app) as hostport:
            self.hostport = hostport
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> _Server:
        self._thread.start()
        assert self._ready.wait(30), "the app did not start"
        return self

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


def test_no_server_errors_and_schema_conformance(tmp_path: Path) -> None:
    """Each operation in turn (schemathesis' own pytest plugin does not run on pytest 9)."""
    with _Server(tmp_path) as server:
        key = server.app.state.bootstrap_key
        assert key, "a fresh journal logs one admin key"
        base = f"http://{server.hostport}"
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        # Revoking keys at random could revoke the key the run itself uses.
        schema = schema.exclude(method="DELETE", path="/v1/keys/{key_id}")
        failures: list[str] = []
        tested = []
        for result in schema.get_all_operations():
            operation = result.ok()
            tested.append(operation.label)

            @hypothesis.given(case=operation.as_strategy())
            @hypothesis.settings(
                max_examples=25,
                deadline=None,
                database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            def fuzz(case: Any) -> None:
                case.call_and_validate(
                    base_url=base,
                    headers=bearer(key),
                    checks=[
                        not_a_server_error,
                        response_schema_conformance,
                        content_type_conformance,
                    ],
                    timeout=10,
                )

            try:
                fuzz()
            except Exception as exc:
                failures.append(f"{operation.label}: {exc}"[:2000])
        assert len(tested) >= 20, tested
        assert not failures, "\n\n".join(failures)
