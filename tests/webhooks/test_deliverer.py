"""The deliverer against ``httpx.MockTransport`` receivers, over a real SQLite outbox: what counts
as a failure, giving up, and giving rows back when it stops mid-attempt."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bridge.journal.control import ControlStore
from bridge.journal.ids import new_call_id
from bridge.journal.outbox import Outbox
from bridge.journal.store import JournalStore
from bridge.journal.subscriptions import WebhookStore
from bridge.journal.webhook_models import OutboxRow
from bridge.journal.writer import JournalWriter
from bridge.secrets import SecretBox
from bridge.session.actions import JournalTurn
from bridge.webhooks.deliverer import Deliverer
from bridge.webhooks.retry import RetryPolicy
from tests.auth import SECRET_KEY
from tests.journal.conftest import sqlite_store
from tests.waiting import until
from tests.webhooks.harness import eventually

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Setup:
    store: JournalStore
    outbox: Outbox
    box: SecretBox
    seen: list[httpx.Request]

    async def subscribe(self, sealed: str | None = None) -> str:
        await ControlStore(self.store).ensure_org("acme")
        row = await WebhookStore(self.store).add(
            "acme",
            url="https://receiver.example/hook",
            events=["transcript.message"],
            sealed_secret=sealed or self.box.seal(b"whsec_test"),
            secret_last4="test",
        )
        return row.id

    async def stage(self, turns: int = 1) -> str:
        writer = JournalWriter(self.store, outbox=self.outbox, linger_s=0)
        await writer.start()
        call_id = new_call_id()
        writer.call_started(
            call_id, carrier="twilio", started_at=datetime.now(UTC), org_id="acme", agent="a"
        )
        for n in range(turns):
            writer.record(call_id, JournalTurn("user", f"turn {n}", float(n)))
        await writer.close()
        return call_id

    async def rows(self) -> list[OutboxRow]:
        async with self.store.transaction() as tx:
            return list(await tx.session.scalars(select(OutboxRow).order_by(OutboxRow.id)))

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=2, base_s=0.01, cap_s=0.02, timeout_s=1)


@contextlib.asynccontextmanager
async def delivering(setup: Setup, handler: Handler) -> AsyncIterator[Deliverer]:
    def record(request: httpx.Request) -> httpx.Response:
        setup.seen.append(request)
        return handler(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
        deliverer = Deliverer(setup.outbox, client, setup.box, setup.policy, poll_s=0.05)
        await deliverer.start()
        try:
            yield deliverer
        finally:
            await deliverer.close()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with sqlite_store(tmp_path / "journal.db") as store:
        yield Setup(store, Outbox(store), SecretBox([SECRET_KEY]), [])


async def settled(setup: Setup, state: str) -> list[OutboxRow]:
    async def check() -> list[OutboxRow]:
        return [row for row in await setup.rows() if row.state == state]

    await eventually(check, 10, f"a {state} row")
    return await check()


async def test_redirects_are_failures_not_followed(setup: Setup) -> None:
    await setup.subscribe()
    await setup.stage()
    redirect = httpx.Response(302, headers={"Location": "https://elsewhere.example/"})
    async with delivering(setup, lambda _: redirect):
        (row,) = await settled(setup, "dead")
    assert (row.attempts, row.last_status, row.last_error) == (2, 302, "HTTP 302")
    assert {str(r.url) for r in setup.seen} == {"https://receiver.example/hook"}


async def test_timeouts_and_refusals_are_retried_then_dead(setup: Setup) -> None:
    await setup.subscribe()
    await setup.stage()

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with delivering(setup, slow):
        (row,) = await settled(setup, "dead")
    assert row.attempts == 2 and row.last_status is None
    assert row.last_error == "ReadTimeout: timed out"
    assert len(setup.seen) == 2


async def test_a_secret_that_cannot_be_opened_is_a_failure(setup: Setup) -> None:
    other = SecretBox([SecretBox.generate_key()])
    await setup.subscribe(sealed=other.seal(b"whsec_elsewhere"))
    await setup.stage()
    async with delivering(setup, lambda _: httpx.Response(200)):
        (row,) = await settled(setup, "dead")
    assert "cannot be decrypted" in (row.last_error or "")
    assert setup.seen == []  # nothing unsigned ever leaves


async def test_stopping_mid_attempt_gives_the_row_back(setup: Setup) -> None:
    await setup.subscribe()
    await setup.stage(turns=2)
    entered = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with httpx.AsyncClient(transport=httpx.MockTransport(hang)) as client:
        deliverer = Deliverer(setup.outbox, client, setup.box, setup.policy, poll_s=0.05)
        await deliverer.start()
        await until(entered.is_set, 5, "an attempt")
        await deliverer.close()
    first, second = await setup.rows()
    assert (first.state, first.attempts, first.lease_owner, first.lease_until) == (
        "pending",
        0,
        None,
        None,
    )
    assert (second.state, second.attempts) == ("pending", 0)  # held back behind the first
