"""The durable outbox of event webhooks, and the queue of post-call jobs.

**Staging.** The :class:`~bridge.journal.writer.JournalWriter` hands :meth:`Outbox.stage` what it
wrote in a transaction (:class:`CallFact`), *inside* that transaction: a call journaled becomes
``call.started``, a transcript turn ``transcript.message``, a tool call ``tool.called``; each
goes in ``webhook_outbox`` once per active subscription of the call's organization that wants it
(and names the call's agent, or none). A call's end inserts its ``postcall_jobs`` row. The
events commit with the journal rows or not at all, so none is lost across a restart.
``call.ended`` is staged by the post-call step (:meth:`Outbox.stage_ended`) in the transaction
that stores the summary.

**Claiming.** :meth:`Outbox.claim` first looks whether anything is due (a plain read: an idle
poll takes no write lock), then leases due rows with one ``UPDATE … WHERE id IN (SELECT …
ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED) RETURNING …``: on PostgreSQL several workers skip
each other's rows instead of waiting or taking them twice; on SQLite the one statement is atomic
(``FOR UPDATE`` is not rendered). A row is due when it is ``pending``, its ``next_attempt_at``
has come, its lease (if any) has run out — a worker that died mid-delivery loses its rows after
``lease_s`` — and **no older pending row of the same call and subscription exists**: a
receiver gets one call's events one at a time, in order, an event waiting out its backoff
holding back the later ones (a ``dead`` one no longer does). Each claim adds one to ``attempts``;
:meth:`Outbox.settle` writes the outcome only while the lease is still the caller's (owner and
attempt number both match), so a worker whose lease ran out cannot overwrite a later attempt.
Delivery is therefore at least once: receivers dedupe on the event id.

Time is always an argument (``now``): the I/O layers above read the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, exists, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bridge.journal.ids import new_call_id
from bridge.journal.models import Call
from bridge.journal.store import JournalStore, JournalTx
from bridge.journal.webhook_models import (
    DELIVERED,
    DONE,
    PENDING,
    OutboxRow,
    PostcallJob,
    WebhookSubscription,
)
from bridge.session.actions import JournalAction, JournalToolCall, JournalTurn

__all__ = ["CallFact", "Claimed", "Outbox", "event_data"]

FactKind = Literal["started", "records", "finished"]


@dataclass(frozen=True, slots=True)
class CallFact:
    """What the writer wrote for one call in one transaction, as far as the outbox cares."""

    call_id: str
    kind: FactKind
    fields: Mapping[str, Any] | None = None
    """``started``: the fields the call was journaled with (status, carrier, numbers, …)."""
    records: Sequence[JournalAction] = ()
    """``records``: the turns, events and tool calls, in order."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row leased to one worker for one attempt (``attempts`` counts this one)."""

    id: int
    event_id: str
    subscription_id: str
    org_id: str
    call_id: str
    agent: str | None
    type: str
    data: Mapping[str, Any]
    created_at: datetime
    attempts: int


def event_data(record: JournalAction) -> tuple[str, dict[str, Any]] | None:
    """The webhook event of one journal record (``None``: events are not sent)."""
    if isinstance(record, JournalTurn):
        return "transcript.message", {
            "role": record.role,
            "text": record.text,
            "time_in_call_secs": record.time_in_call_secs,
            "interrupted": record.interrupted,
        }
    if isinstance(record, JournalToolCall):
        return "tool.called", {
            "tool_call_id": record.call_id,
            "name": record.name,
            "arguments": dict(record.arguments),
            "output": record.output,
            "ok": record.ok,
            "time_in_call_secs": record.time_in_call_secs,
            "duration_ms": record.duration_ms,
        }
    return None


def _started_data(fields: Mapping[str, Any]) -> dict[str, Any]:
    started_at = fields.get("started_at")
    return {
        "status": fields.get("status") or "in-progress",
        "carrier": fields.get("carrier"),
        "direction": fields.get("direction") or "inbound",
        "from": fields.get("from_number"),
        "to": fields.get("to_number"),
        "started_at": started_at.isoformat() if isinstance(started_at, datetime) else None,
        "context": dict(fields.get("context") or {}),
    }


def _events_of(fact: CallFact) -> Iterable[tuple[str, dict[str, Any]]]:
    if fact.kind == "started":
        yield "call.started", _started_data(fact.fields or {})
    for record in fact.records:
        event = event_data(record)
        if event is not None:
            yield event


class Outbox:
    """Stages events and post-call jobs in journal transactions; leases them to workers."""

    def __init__(self, store: JournalStore) -> None:
        self._store = store
        self._listeners: dict[str, list[Callable[[], None]]] = {"events": [], "jobs": []}
        self._due: set[str] = set()

    # -- notifications (one worker process: the writer tells its own deliverer) ----------------

    def listen(self, what: Literal["events", "jobs"], callback: Callable[[], None]) -> None:
        """Call ``callback`` after a commit that staged ``what`` (other workers poll)."""
        self._listeners[what].append(callback)

    def committed(self) -> None:
        """The transaction that staged rows committed: wake the listeners."""
        due, self._due = self._due, set()
        for what in sorted(due):
            for callback in self._listeners[what]:
                callback()

    # -- staging, inside the writer's transaction ----------------------------------------------

    async def stage(self, tx: JournalTx, facts: Sequence[CallFact], now: datetime) -> None:
        """Queue the events of ``facts`` for every subscription that wants them, and a
        post-call job for every call that ended."""
        session = tx.session
        ended = [fact.call_id for fact in facts if fact.kind == "finished"]
        if ended:
            await _insert_jobs(session, ended, now)
            self._due.add("jobs")
        events = [(fact.call_id, *event) for fact in facts for event in _events_of(fact)]
        if events and await self._insert_events(session, events, now):
            self._due.add("events")

    async def stage_ended(
        self, tx: JournalTx, call_id: str, data: Mapping[str, Any], now: datetime
    ) -> None:
        """Queue ``call.ended`` (the post-call step, with the summary it stored)."""
        if await self._insert_events(tx.session, [(call_id, "call.ended", dict(data))], now):
            self._due.add("events")

    async def _insert_events(
        self,
        session: AsyncSession,
        events: Sequence[tuple[str, str, dict[str, Any]]],
        now: datetime,
    ) -> bool:
        call_ids = sorted({call_id for call_id, _, _ in events})
        result = await session.execute(
            select(Call.id, Call.org_id, Call.agent, WebhookSubscription)
            .join(WebhookSubscription, WebhookSubscription.org_id == Call.org_id)
            .where(Call.id.in_(call_ids), WebhookSubscription.active.is_(True))
            .order_by(WebhookSubscription.id)
        )
        targets: dict[str, list[tuple[str, str | None, WebhookSubscription]]] = {}
        for call_id, org_id, agent, subscription in result:
            targets.setdefault(call_id, []).append((org_id, agent, subscription))
        rows: list[dict[str, Any]] = []
        for call_id, kind, data in events:
            event_id = new_call_id()
            for org_id, agent, subscription in targets.get(call_id, ()):
                if subscription.wants(kind, agent):
                    rows.append(
                        {
                            "event_id": event_id,
                            "subscription_id": subscription.id,
                            "org_id": org_id,
                            "call_id": call_id,
                            "agent": agent,
                            "type": kind,
                            "data": data,
                            "created_at": now,
                            "state": PENDING,
                            "attempts": 0,
                            "next_attempt_at": now,
                        }
                    )
        if rows:
            await session.execute(insert(OutboxRow), rows)
        return bool(rows)

    # -- deliveries: claim, settle, release ----------------------------------------------------

    async def claim(
        self, owner: str, *, now: datetime, limit: int, lease_s: float
    ) -> list[Claimed]:
        """Lease up to ``limit`` due rows to ``owner`` for ``lease_s``, oldest first."""
        row = OutboxRow
        older = aliased(OutboxRow)
        blocked = exists().where(
            older.subscription_id == row.subscription_id,
            older.call_id == row.call_id,
            older.state == PENDING,
            older.id < row.id,
        )
        candidates = select(row.id).where(
            row.state == PENDING,
            row.next_attempt_at <= now,
            or_(row.lease_until.is_(None), row.lease_until <= now),
            ~blocked,
        )
        if not await self._any(candidates, "peek_outbox"):
            return []
        due = candidates.order_by(row.id).limit(limit).with_for_update(skip_locked=True)
        columns = (
            row.id,
            row.event_id,
            row.subscription_id,
            row.org_id,
            row.call_id,
            row.agent,
            row.type,
            row.data,
            row.created_at,
            row.attempts,
        )
        async with self._store.transaction("claim_outbox") as tx:
            result = await tx.session.execute(
                update(row)
                .where(row.id.in_(due))
                .values(
                    lease_owner=owner,
                    lease_until=now + timedelta(seconds=lease_s),
                    attempts=row.attempts + 1,
                )
                .returning(*columns)
                .execution_options(synchronize_session=False)
            )
            claimed = [Claimed(*values) for values in result]
        return sorted(claimed, key=lambda item: item.id)

    async def _any(self, query: Select[Any], operation: str) -> bool:
        """Whether ``query`` finds a row: a read first, so that an idle poll never takes
        SQLite's write lock (the journal writer's batches would wait for it)."""
        async with self._store.transaction(operation) as tx:
            return await tx.session.scalar(query.limit(1)) is not None

    async def settle(
        self,
        claimed: Claimed,
        owner: str,
        *,
        state: str,
        now: datetime,
        next_attempt_at: datetime | None = None,
        status: int | None = None,
        error: str | None = None,
    ) -> bool:
        """Record an attempt's outcome (``state``: delivered, pending again, or dead); False if
        the lease was no longer ``owner``'s (nothing written)."""
        values: dict[str, Any] = {
            "state": state,
            "lease_owner": None,
            "lease_until": None,
            "last_status": status,
            "last_error": error[:500] if error else None,
        }
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if state == DELIVERED:
            values["delivered_at"] = now
        async with self._store.transaction("settle_outbox") as tx:
            changed = await tx.session.scalar(
                update(OutboxRow)
                .where(
                    OutboxRow.id == claimed.id,
                    OutboxRow.lease_owner == owner,
                    OutboxRow.attempts == claimed.attempts,
                )
                .values(**values)
                .returning(OutboxRow.id)
                .execution_options(synchronize_session=False)
            )
        return changed is not None

    async def release(self, owner: str, ids: Iterable[int] | None = None) -> None:
        """Give back ``owner``'s leases whose attempt never finished (``ids``; ``None``: all of
        them, as at shutdown — a claim cut short may have leased rows its caller never saw):
        due again at once, the cut attempt not counted."""
        query = update(OutboxRow).where(OutboxRow.lease_owner == owner, OutboxRow.state == PENDING)
        if ids is not None:
            wanted = list(ids)
            if not wanted:
                return
            query = query.where(OutboxRow.id.in_(wanted))
        async with self._store.transaction("release_outbox") as tx:
            await tx.session.execute(
                query.values(
                    lease_owner=None, lease_until=None, attempts=OutboxRow.attempts - 1
                ).execution_options(synchronize_session=False)
            )

    async def subscriptions(self, ids: Iterable[str]) -> dict[str, WebhookSubscription]:
        """The subscriptions of claimed rows, by id (deleted ones are missing)."""
        wanted = set(ids)
        if not wanted:
            return {}
        async with self._store.transaction("outbox_subscriptions") as tx:
            rows = await tx.session.scalars(
                select(WebhookSubscription).where(WebhookSubscription.id.in_(sorted(wanted)))
            )
            return {row.id: row for row in rows}

    # -- post-call jobs ------------------------------------------------------------------------

    async def claim_jobs(
        self, owner: str, *, now: datetime, limit: int, lease_s: float
    ) -> list[tuple[str, int]]:
        """Lease up to ``limit`` due post-call jobs: ``(call_id, attempts)``, oldest first."""
        job = PostcallJob
        candidates = select(job.call_id).where(
            job.state == PENDING,
            job.next_attempt_at <= now,
            or_(job.lease_until.is_(None), job.lease_until <= now),
        )
        if not await self._any(candidates, "peek_postcall"):
            return []
        due = (
            candidates.order_by(job.created_at, job.call_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._store.transaction("claim_postcall") as tx:
            result = await tx.session.execute(
                update(job)
                .where(job.call_id.in_(due))
                .values(
                    lease_owner=owner,
                    lease_until=now + timedelta(seconds=lease_s),
                    attempts=job.attempts + 1,
                )
                .returning(job.call_id, job.attempts)
                .execution_options(synchronize_session=False)
            )
            return sorted((call_id, attempts) for call_id, attempts in result)

    async def finish_job(self, tx: JournalTx, call_id: str, owner: str, now: datetime) -> bool:
        """Mark the job done inside the transaction that stored its results; False if the
        lease was lost (then roll the transaction back: another worker has the job)."""
        done = await tx.session.scalar(
            update(PostcallJob)
            .where(
                PostcallJob.call_id == call_id,
                PostcallJob.lease_owner == owner,
                PostcallJob.state == PENDING,
            )
            .values(state=DONE, done_at=now, lease_owner=None, lease_until=None)
            .returning(PostcallJob.call_id)
            .execution_options(synchronize_session=False)
        )
        return done is not None

    async def release_jobs(self, owner: str) -> None:
        """Give back every job leased to ``owner`` (shutdown): due again at once."""
        async with self._store.transaction("release_postcall") as tx:
            await tx.session.execute(
                update(PostcallJob)
                .where(PostcallJob.lease_owner == owner, PostcallJob.state == PENDING)
                .values(lease_owner=None, lease_until=None, attempts=PostcallJob.attempts - 1)
                .execution_options(synchronize_session=False)
            )

    async def retry_job(self, call_id: str, owner: str, at: datetime) -> None:
        """Give the job back after a failure: due again at ``at``."""
        async with self._store.transaction("retry_postcall") as tx:
            await tx.session.execute(
                update(PostcallJob)
                .where(PostcallJob.call_id == call_id, PostcallJob.lease_owner == owner)
                .values(lease_owner=None, lease_until=None, next_attempt_at=at)
                .execution_options(synchronize_session=False)
            )


async def _insert_jobs(session: AsyncSession, call_ids: Sequence[str], now: datetime) -> None:
    """One job per ended call; a call ended twice (a late carrier status) keeps its first."""
    rows = [
        {
            "call_id": call_id,
            "state": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for call_id in dict.fromkeys(call_ids)
    ]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(PostcallJob).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(PostcallJob).on_conflict_do_nothing()
    else:  # pragma: no cover - the journal runs on SQLite or PostgreSQL only
        raise NotImplementedError(f"post-call jobs on {dialect}")
    await session.execute(stmt, rows)
