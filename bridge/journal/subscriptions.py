"""Event-webhook subscriptions and their deliveries, scoped to an organization.

Like :mod:`bridge.journal.control`: every method takes ``org`` first and never returns (or
changes) a row of another organization — such a row is :class:`~bridge.journal.store.NotFound`,
exactly like a missing one. Read models are the ORM rows, detached.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.journal.control import ControlStore
from bridge.journal.ids import new_call_id
from bridge.journal.models import utcnow
from bridge.journal.store import JournalStore, NotFound
from bridge.journal.webhook_models import DEAD, PENDING, OutboxRow, WebhookSubscription

__all__ = ["WebhookStore"]

_CHANGEABLE = frozenset({"url", "events", "agent", "active", "description"})


class WebhookStore:
    """Organization-scoped reads and writes of webhook subscriptions and deliveries."""

    def __init__(self, journal: JournalStore) -> None:
        self._journal = journal

    async def add(
        self,
        org: str,
        *,
        url: str,
        events: list[str],
        sealed_secret: str,
        secret_last4: str,
        agent: str | None = None,
        active: bool = True,
        description: str | None = None,
    ) -> WebhookSubscription:
        await ControlStore(self._journal).ensure_org(org)
        now = utcnow()
        row = WebhookSubscription(
            id=new_call_id(),
            org_id=org,
            url=url,
            events=list(events),
            agent=agent,
            active=active,
            description=description,
            sealed_secret=sealed_secret,
            secret_last4=secret_last4,
            created_at=now,
            updated_at=now,
        )
        async with self._journal.transaction("add_webhook") as tx:
            tx.session.add(row)
        return row

    async def subscriptions(self, org: str) -> list[WebhookSubscription]:
        query = select(WebhookSubscription).where(WebhookSubscription.org_id == org)
        async with self._journal.transaction("list_webhooks") as tx:
            return list(await tx.session.scalars(query.order_by(WebhookSubscription.id)))

    async def get(self, org: str, subscription_id: str) -> WebhookSubscription:
        async with self._journal.transaction("get_webhook") as tx:
            return await _owned(tx.session, org, subscription_id)

    async def update(self, org: str, subscription_id: str, **fields: Any) -> WebhookSubscription:
        unknown = set(fields) - _CHANGEABLE
        if unknown:
            raise TypeError(f"a webhook subscription cannot change {sorted(unknown)}")
        async with self._journal.transaction("update_webhook") as tx:
            row = await _owned(tx.session, org, subscription_id)
            for name, value in fields.items():
                setattr(row, name, list(value) if name == "events" else value)
            row.updated_at = utcnow()
            return row

    async def delete(self, org: str, subscription_id: str) -> None:
        """Delete the subscription and, with it, its undelivered events."""
        async with self._journal.transaction("delete_webhook") as tx:
            await tx.session.delete(await _owned(tx.session, org, subscription_id))

    async def deliveries(
        self,
        org: str,
        subscription_id: str,
        *,
        state: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[OutboxRow]:
        """The subscription's deliveries, newest first (``before_id``: older than that row)."""
        query = select(OutboxRow).where(
            OutboxRow.subscription_id == subscription_id, OutboxRow.org_id == org
        )
        if state is not None:
            query = query.where(OutboxRow.state == state)
        if before_id is not None:
            query = query.where(OutboxRow.id < before_id)
        async with self._journal.transaction("list_deliveries") as tx:
            await _owned(tx.session, org, subscription_id)
            rows = await tx.session.scalars(query.order_by(OutboxRow.id.desc()).limit(limit))
            return list(rows)

    async def redeliver(
        self, org: str, subscription_id: str, delivery_id: int, now: datetime
    ) -> OutboxRow:
        """Make a ``dead`` delivery pending again, due now, with its attempts counted afresh
        (a pending or delivered one is left as it is)."""
        async with self._journal.transaction("redeliver") as tx:
            await _owned(tx.session, org, subscription_id)
            row = await tx.session.get(OutboxRow, delivery_id)
            if row is None or row.subscription_id != subscription_id or row.org_id != org:
                raise NotFound("delivery not found", operation="redeliver")
            if row.state == DEAD:
                await tx.session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == delivery_id, OutboxRow.state == DEAD)
                    .values(_retried(now))
                    .execution_options(synchronize_session=False)
                )
                await tx.session.refresh(row)
            return row


def _retried(now: datetime) -> Mapping[str, Any]:
    return {
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "lease_owner": None,
        "lease_until": None,
    }


async def _owned(session: AsyncSession, org: str, subscription_id: str) -> WebhookSubscription:
    row = await session.get(WebhookSubscription, subscription_id)
    if row is None or row.org_id != org:
        raise NotFound("webhook subscription not found", operation="get_webhook")
    return row
