"""The campaign store on SQLite and PostgreSQL: state changes, the lease, due contacts,
settling finished calls, aggregates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.journal.campaigns import CampaignStore
from bridge.journal.control import ControlStore
from bridge.journal.store import Conflict, JournalStore, NotFound

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


async def make(store: JournalStore, numbers: int = 3) -> tuple[CampaignStore, str]:
    campaigns = CampaignStore(store, ControlStore(store))
    contacts = [(f"+1555010000{i}", {"i": str(i)}) for i in range(numbers)]
    campaign = await campaigns.create(
        "acme", contacts, name="c", agent="bot", max_concurrent=2, max_attempts=2,
        retry_on=["busy"], retry_delay_s=60.0, context={},
    )  # fmt: skip
    return campaigns, campaign.id


async def test_transitions_are_conditional_and_open_and_close_runs(store: JournalStore) -> None:
    campaigns, cid = await make(store)
    running = await campaigns.transition("acme", cid, allowed_from=("draft",), to="running")
    assert running.status == "running"
    with pytest.raises(Conflict):
        await campaigns.transition("acme", cid, allowed_from=("draft", "paused"), to="running")
    with pytest.raises(NotFound):
        await campaigns.transition("other", cid, allowed_from=("running",), to="paused")
    await campaigns.transition("acme", cid, allowed_from=("running",), to="paused", reason="p")
    await campaigns.transition("acme", cid, allowed_from=("paused",), to="running")
    runs = await campaigns.runs("acme", cid)
    assert [(r.end_reason, r.ended_at is None) for r in runs] == [("p", False), (None, True)]
    await campaigns.transition("acme", cid, allowed_from=("running",), to="canceled")
    totals = await campaigns.aggregates(cid)
    assert totals.skipped == 3 and totals.pending == 0


async def test_one_lease_holder_at_a_time(store: JournalStore) -> None:
    campaigns, cid = await make(store)
    later = NOW + timedelta(seconds=15)
    assert await campaigns.lease(cid, "a", later, NOW)
    assert not await campaigns.lease(cid, "b", later, NOW)
    assert await campaigns.lease(cid, "a", later, NOW)  # renewal
    assert await campaigns.lease(cid, "b", later + timedelta(seconds=15), later + timedelta(1))
    await campaigns.release("b")
    assert await campaigns.lease(cid, "a", later, NOW)


async def test_due_dialing_settling_and_aggregates(store: JournalStore) -> None:
    campaigns, cid = await make(store)
    due = await campaigns.due(cid, NOW, 2)
    assert [c.position for c in due] == [0, 1]
    assert await campaigns.due(cid, NOW, 0) == []
    for contact, call_id in zip(
        due, ("01CALLA0000000000000000000", "01CALLB0000000000000000000"), strict=True
    ):
        await campaigns.mark_dialing(contact.id, call_id, NOW)
        await store.create_call(call_id, carrier="twilio", started_at=NOW, org_id="acme")
    assert {c.position for c in await campaigns.dialing(cid)} == {0, 1}
    assert [c.position for c in await campaigns.due(cid, NOW, 5)] == [2]
    await store.finish_call(
        "01CALLA0000000000000000000", status="completed", end_reason="x",
        ended_at=NOW + timedelta(seconds=30),
    )  # fmt: skip
    settled = await campaigns.settled(["01CALLA0000000000000000000", "01CALLB0000000000000000000"])
    assert list(settled) == ["01CALLA0000000000000000000"]
    assert settled["01CALLA0000000000000000000"].duration_secs == 30.0
    still = await campaigns.unsettled_since(["01CALLB0000000000000000000"])
    assert still["01CALLB0000000000000000000"][0] == "in-progress"
    first, second = due
    await campaigns.finish_contact(
        first.id, status="done", outcome="completed", success=True, duration_secs=30.0
    )
    retry_at = NOW + timedelta(seconds=60)
    await campaigns.finish_contact(second.id, status="pending", outcome="busy", retry_at=retry_at)
    assert [c.position for c in await campaigns.due(cid, NOW, 5)] == [2]  # the retry waits
    assert [c.position for c in await campaigns.due(cid, retry_at, 5)] == [1, 2]
    totals = await campaigns.aggregates(cid)
    assert (totals.numbers, totals.done, totals.pending, totals.success) == (3, 1, 2, 1)
    assert totals.attempts == 2 and totals.total_duration_secs == 30.0
    assert await campaigns.active_ids() == []  # draft, nothing dialing any more
