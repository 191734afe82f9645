"""The webhook outbox and the post-call jobs, on SQLite and PostgreSQL (see conftest.py).

Events are staged in the journal writer's own transactions; claiming leases due rows so that
concurrent workers never share one, a receiver gets one call's events in order, a lease that
ran out is taken over, and a worker whose lease ran out cannot overwrite a later attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from bridge.journal.control import ControlStore
from bridge.journal.ids import new_call_id
from bridge.journal.outbox import Claimed, Outbox
from bridge.journal.store import JournalStore
from bridge.journal.subscriptions import WebhookStore
from bridge.journal.webhook_models import (
    DEAD,
    DELIVERED,
    PENDING,
    OutboxRow,
    PostcallJob,
    WebhookSubscription,
)
from bridge.journal.writer import JournalWriter
from bridge.session.actions import JournalEvent, JournalToolCall, JournalTurn
from tests.journal.conftest import sqlite_store

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
ALL = ["call.started", "transcript.message", "tool.called", "call.ended"]


@pytest.fixture
def outbox(store: JournalStore) -> Outbox:
    return Outbox(store)


@pytest.fixture
async def writer(store: JournalStore, outbox: Outbox) -> AsyncIterator[JournalWriter]:
    journal = JournalWriter(store, outbox=outbox, linger_s=0)
    await journal.start()
    yield journal
    await journal.close()


async def subscribe(
    store: JournalStore, org: str, events: list[str] | None = None, **fields: Any
) -> WebhookSubscription:
    await ControlStore(store).ensure_org(org)
    return await WebhookStore(store).add(
        org,
        url="https://example.com/hook",
        events=events or ALL,
        sealed_secret="sealed",
        secret_last4="abcd",
        **fields,
    )


def start(writer: JournalWriter, org: str, agent: str = "front") -> str:
    call_id = new_call_id()
    writer.call_started(
        call_id, carrier="twilio", started_at=T0, org_id=org, agent=agent, from_number="+15550001"
    )
    return call_id


def finish(writer: JournalWriter, call_id: str) -> None:
    writer.call_finished(
        call_id, status="completed", end_reason="caller hung up", ended_at=T0 + timedelta(0, 30)
    )


async def rows(store: JournalStore, subscription: WebhookSubscription) -> list[OutboxRow]:
    async with store.transaction() as tx:
        query = select(OutboxRow).where(OutboxRow.subscription_id == subscription.id)
        return list(await tx.session.scalars(query.order_by(OutboxRow.id)))


async def test_events_are_staged_for_the_subscriptions_that_want_them(
    store: JournalStore, writer: JournalWriter
) -> None:
    everything = await subscribe(store, "acme")
    front_turns = await subscribe(store, "acme", ["transcript.message"], agent="front")
    paused = await subscribe(store, "acme", active=False)
    theirs = await subscribe(store, "globex")
    ours = start(writer, "acme")
    other_agent = start(writer, "acme", agent="sales")
    globex = start(writer, "globex")
    writer.record(ours, JournalTurn("agent", "Hello.", 0.5))
    writer.record(ours, JournalEvent("barge_in", 1.0, {"heard_ms": 300}))  # not an event type
    writer.record(ours, JournalToolCall("t1", "lookup", {"id": "7"}, '{"ok":true}', True, 2, 40))
    writer.record(other_agent, JournalTurn("user", "Hi sales.", 0.7))
    writer.record(globex, JournalTurn("user", "Hi globex.", 0.7))
    finish(writer, ours)
    await writer.flush()

    staged = await rows(store, everything)
    assert [r.type for r in staged if r.call_id == ours] == [
        "call.started",
        "transcript.message",
        "tool.called",
    ]
    assert [r.type for r in staged if r.call_id == other_agent] == [
        "call.started",
        "transcript.message",
    ]
    staged = [r for r in staged if r.call_id == ours]
    started = staged[0]
    assert (started.org_id, started.agent, started.state, started.attempts) == (
        "acme",
        "front",
        PENDING,
        0,
    )
    assert started.data["from"] == "+15550001" and started.data["status"] == "in-progress"
    assert started.data["started_at"] == T0.isoformat()
    assert staged[1].data == {
        "role": "agent",
        "text": "Hello.",
        "time_in_call_secs": 0.5,
        "interrupted": False,
    }
    assert staged[2].data["name"] == "lookup" and staged[2].data["arguments"] == {"id": "7"}
    assert [(r.call_id, r.type) for r in await rows(store, front_turns)] == [
        (ours, "transcript.message")
    ]
    # the same event has the same id for every subscription
    assert (await rows(store, front_turns))[0].event_id == staged[1].event_id
    assert await rows(store, paused) == []
    assert [(r.call_id, r.type) for r in await rows(store, theirs)] == [
        (globex, "call.started"),
        (globex, "transcript.message"),
    ]
    async with store.transaction() as tx:
        jobs = list(await tx.session.scalars(select(PostcallJob)))
    assert [(job.call_id, job.state) for job in jobs] == [(ours, PENDING)]


async def test_a_call_ended_twice_gets_one_post_call_job(
    store: JournalStore, writer: JournalWriter, outbox: Outbox
) -> None:
    call_id = start(writer, "acme")
    finish(writer, call_id)
    await writer.flush()
    finish(writer, call_id)  # a late carrier status
    await writer.flush()
    assert writer.failed == 0
    assert await outbox.claim_jobs("a", now=T0, limit=10, lease_s=60) == []  # not yet due
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await outbox.claim_jobs("a", now=later, limit=10, lease_s=60) == [(call_id, 1)]
    assert await outbox.claim_jobs("b", now=later, limit=10, lease_s=60) == []  # leased


async def _stage(store: JournalStore, outbox: Outbox, calls: int, events: int) -> list[str]:
    """``events`` transcript turns for each of ``calls`` acme calls, one subscription."""
    writer = JournalWriter(store, outbox=outbox, linger_s=0)
    await writer.start()
    ids = [start(writer, "acme") for _ in range(calls)]
    for n in range(events):
        for call_id in ids:
            writer.record(call_id, JournalTurn("user", f"turn {n}", float(n)))
    await writer.close()
    return ids


def due() -> datetime:
    """A time at which every row staged so far is due."""
    return datetime.now(UTC) + timedelta(seconds=5)


async def test_claims_keep_each_calls_order(store: JournalStore, outbox: Outbox) -> None:
    await subscribe(store, "acme", ["transcript.message"])
    first, second = await _stage(store, outbox, calls=2, events=3)
    now = due()

    claimed = await outbox.claim("w1", now=now, limit=10, lease_s=60)
    assert [(c.call_id, c.data["text"]) for c in claimed] == [
        (first, "turn 0"),
        (second, "turn 0"),
    ]
    assert all(c.attempts == 1 for c in claimed)
    # while a call's oldest event is out, its next one is not due
    assert await outbox.claim("w2", now=now, limit=10, lease_s=60) == []
    one, two = claimed
    assert await outbox.settle(one, "w1", state=DELIVERED, now=now, status=204)
    retry_at = now + timedelta(seconds=30)
    assert await outbox.settle(
        two, "w1", state=PENDING, now=now, next_attempt_at=retry_at, status=500, error="HTTP 500"
    )
    # the first call moves on; the second waits for its retry, holding its later events back
    again = await outbox.claim("w2", now=now, limit=10, lease_s=60)
    assert [(c.call_id, c.data["text"]) for c in again] == [(first, "turn 1")]
    later = await outbox.claim("w2", now=retry_at, limit=10, lease_s=60)
    assert [(c.call_id, c.data["text"], c.attempts) for c in later] == [(second, "turn 0", 2)]
    # a dead event no longer holds the call back
    assert await outbox.settle(later[0], "w2", state=DEAD, now=retry_at, error="HTTP 500")
    resumed = await outbox.claim("w3", now=retry_at, limit=10, lease_s=60)
    assert [(c.call_id, c.data["text"]) for c in resumed] == [(second, "turn 1")]


async def test_concurrent_claimers_never_share_a_row(store: JournalStore, outbox: Outbox) -> None:
    await subscribe(store, "acme", ["transcript.message"])
    await subscribe(store, "acme", ["transcript.message"])  # two receivers: rows of their own
    await _stage(store, outbox, calls=30, events=2)
    now = due()
    workers = [Outbox(store) for _ in range(4)]
    seen: list[int] = []
    for _ in range(3):  # rounds: each delivers what it claimed, then claims again
        batches = await asyncio.gather(
            *(w.claim(f"w{i}", now=now, limit=7, lease_s=60) for i, w in enumerate(workers))
        )
        claimed = [row for batch in batches for row in batch]
        ids = [row.id for row in claimed]
        assert len(ids) == len(set(ids)), "a row was claimed twice"
        assert not set(ids) & set(seen)
        seen += ids
        for i, batch in enumerate(batches):
            for row in batch:
                assert await workers[i].settle(row, f"w{i}", state=DELIVERED, now=now)
    # 2 receivers x 30 calls: 60 first-in-line rows each round, of which 4 workers take 7 each
    assert len(seen) == 3 * 4 * 7


async def test_a_lapsed_lease_is_taken_over_and_the_old_owner_fenced_off(
    store: JournalStore, outbox: Outbox
) -> None:
    await subscribe(store, "acme", ["transcript.message"])
    await _stage(store, outbox, calls=1, events=1)
    now = due()
    (mine,) = await outbox.claim("slow", now=now, limit=5, lease_s=10)
    assert await outbox.claim("fast", now=now + timedelta(seconds=9), limit=5, lease_s=10) == []
    (theirs,) = await outbox.claim("fast", now=now + timedelta(seconds=11), limit=5, lease_s=10)
    assert (theirs.id, theirs.attempts) == (mine.id, 2)
    assert not await outbox.settle(mine, "slow", state=DELIVERED, now=now)  # fenced off
    assert await outbox.settle(theirs, "fast", state=DELIVERED, now=now)


async def test_release_makes_rows_due_at_once(store: JournalStore, outbox: Outbox) -> None:
    await subscribe(store, "acme", ["transcript.message"])
    await _stage(store, outbox, calls=2, events=1)
    now = due()
    claimed = await outbox.claim("stopping", now=now, limit=5, lease_s=600)
    assert len(claimed) == 2
    assert await outbox.settle(claimed[0], "stopping", state=DELIVERED, now=now)
    await outbox.release("stopping", [row.id for row in claimed])
    (again,) = await outbox.claim("next", now=now, limit=5, lease_s=600)
    assert (again.id, again.attempts) == (claimed[1].id, 1)  # the cut attempt is not counted
    # without ids: every row of the owner (a claim cut short leased rows nobody saw)
    await outbox.release("next")
    (third,) = await outbox.claim("last", now=now, limit=5, lease_s=600)
    assert (third.id, third.attempts) == (claimed[1].id, 1)


async def test_post_call_jobs_are_leased_and_finished_once(
    store: JournalStore, writer: JournalWriter, outbox: Outbox
) -> None:
    calls = [start(writer, "acme") for _ in range(6)]
    for call_id in calls:
        finish(writer, call_id)
    await writer.flush()
    now = due()
    claimers = [Outbox(store) for _ in range(3)]
    batches = await asyncio.gather(
        *(o.claim_jobs(f"p{i}", now=now, limit=4, lease_s=60) for i, o in enumerate(claimers))
    )
    claimed = [call_id for batch in batches for call_id, _ in batch]
    assert sorted(claimed) == sorted(calls)
    owner = next(f"p{i}" for i, batch in enumerate(batches) if batch)
    call_id = next(batch for batch in batches if batch)[0][0]
    async with store.transaction() as tx:
        assert not await outbox.finish_job(tx, call_id, "someone-else", now)
        assert await outbox.finish_job(tx, call_id, owner, now)
    async with store.transaction() as tx:
        assert not await outbox.finish_job(tx, call_id, owner, now)  # done already


async def test_a_failed_job_comes_back_later_and_a_stopping_runner_gives_jobs_back(
    store: JournalStore, writer: JournalWriter, outbox: Outbox
) -> None:
    first, second = start(writer, "acme"), start(writer, "acme")
    finish(writer, first)
    finish(writer, second)
    await writer.flush()
    now = due()
    assert await outbox.claim_jobs("p", now=now, limit=10, lease_s=60) == sorted(
        [(first, 1), (second, 1)]
    )
    await outbox.retry_job(first, "not-the-owner", now)
    assert await outbox.claim_jobs("q", now=now, limit=10, lease_s=60) == []
    await outbox.retry_job(first, "p", now + timedelta(seconds=30))
    assert await outbox.claim_jobs("q", now=now + timedelta(seconds=29), limit=9, lease_s=60) == []
    later = now + timedelta(seconds=31)
    assert await outbox.claim_jobs("q", now=later, limit=9, lease_s=60) == [(first, 2)]
    await outbox.release_jobs("p")  # stopping: its job is due at once, the attempt not counted
    assert await outbox.claim_jobs("r", now=now, limit=9, lease_s=60) == [(second, 1)]


async def test_an_old_journal_gains_the_new_columns_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with sqlite_store(path) as store, store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE calls DROP COLUMN summary"))
        await conn.execute(text("ALTER TABLE calls DROP COLUMN collected"))
        for table in ("webhook_outbox", "postcall_jobs", "webhook_subscriptions"):
            await conn.execute(text(f"DROP TABLE {table}"))
    async with sqlite_store(path) as store:
        call_id = new_call_id()
        await store.create_call(call_id, carrier="twilio", started_at=T0)
        detail = await store.get_call(call_id)
        assert detail is not None
        assert (detail.call.summary, detail.call.collected) == (None, None)
        await subscribe(store, "acme")


def test_claimed_is_what_the_payload_reads() -> None:
    fields = set(Claimed.__dataclass_fields__)
    assert {"event_id", "type", "created_at", "org_id", "call_id", "agent", "data"} <= fields
