"""The campaigns' store: definitions, the remaining list, runs, aggregates, and the scheduling
primitives the dialer needs (a per-campaign lease, due contacts, settling finished calls).

Every state change is one conditional ``UPDATE`` (``… WHERE status IN (…)``), so two API calls or
two workers racing cannot both win: the loser sees :class:`~bridge.journal.store.Conflict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, cast, func, or_, select, update

from bridge.journal.campaign_models import Campaign, CampaignContact, CampaignRun
from bridge.journal.control import ControlStore
from bridge.journal.ids import new_call_id
from bridge.journal.models import Call, Event, utcnow
from bridge.journal.store import Conflict, JournalStore, NotFound

__all__ = ["Aggregates", "CampaignStore", "Settled"]

FINAL_CONTACT = ("done", "failed", "skipped")
TALKED = ("completed", "transferred")


@dataclass(frozen=True, slots=True)
class Aggregates:
    numbers: int
    pending: int
    dialing: int
    done: int
    failed: int
    skipped: int
    success: int
    attempts: int
    total_duration_secs: float

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped


@dataclass(frozen=True, slots=True)
class Settled:
    """What a finished call of a contact says: its status, its length, and whether a machine
    answered (a voicemail is not a conversation)."""

    status: str
    duration_secs: float
    machine: bool


class CampaignStore:
    def __init__(self, journal: JournalStore, control: ControlStore) -> None:
        self._journal = journal
        self._control = control

    # -- definitions -----------------------------------------------------------------------

    async def create(
        self, org: str, contacts: Sequence[tuple[str, Mapping[str, Any]]], **fields: Any
    ) -> Campaign:
        await self._control.ensure_org(org)
        now = utcnow()
        campaign = Campaign(
            id=new_call_id(), org_id=org, status="draft", created_at=now, updated_at=now, **fields
        )
        async with self._journal.transaction("create_campaign") as tx:
            tx.session.add(campaign)
            await tx.session.flush()
            tx.session.add_all(
                CampaignContact(
                    campaign_id=campaign.id,
                    position=index,
                    number=number,
                    context=dict(context),
                    status="pending",
                    attempts=0,
                    success=False,
                    duration_secs=0.0,
                )
                for index, (number, context) in enumerate(contacts)
            )
        return campaign

    async def all(self, org: str) -> list[Campaign]:
        async with self._journal.transaction("list_campaigns") as tx:
            query = select(Campaign).where(Campaign.org_id == org).order_by(Campaign.id.desc())
            return list(await tx.session.scalars(query))

    async def get(self, org: str | None, campaign_id: str) -> Campaign:
        async with self._journal.transaction("get_campaign") as tx:
            row = await tx.session.get(Campaign, campaign_id)
            if row is None or (org is not None and row.org_id != org):
                raise NotFound("campaign not found", operation="get_campaign")
            return row

    async def update(self, org: str, campaign_id: str, **fields: Any) -> Campaign:
        async with self._journal.transaction("update_campaign") as tx:
            row = await tx.session.get(Campaign, campaign_id)
            if row is None or row.org_id != org:
                raise NotFound("campaign not found", operation="update_campaign")
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
        return row

    async def contacts(self, org: str, campaign_id: str) -> list[CampaignContact]:
        await self.get(org, campaign_id)
        async with self._journal.transaction("campaign_contacts") as tx:
            query = select(CampaignContact).where(CampaignContact.campaign_id == campaign_id)
            return list(await tx.session.scalars(query.order_by(CampaignContact.position)))

    async def runs(self, org: str, campaign_id: str) -> list[CampaignRun]:
        await self.get(org, campaign_id)
        async with self._journal.transaction("campaign_runs") as tx:
            query = select(CampaignRun).where(CampaignRun.campaign_id == campaign_id)
            return list(await tx.session.scalars(query.order_by(CampaignRun.id)))

    # -- state changes ---------------------------------------------------------------------

    async def transition(
        self,
        org: str | None,
        campaign_id: str,
        *,
        allowed_from: Iterable[str],
        to: str,
        reason: str | None = None,
    ) -> Campaign:
        """Move the campaign to ``to`` if it is in ``allowed_from`` (else :class:`Conflict`),
        opening a run when it starts running and closing the open one when it stops."""
        allowed = tuple(allowed_from)
        current = await self.get(org, campaign_id)
        now = utcnow()
        async with self._journal.transaction("campaign_transition") as tx:
            result = await tx.session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.status.in_(allowed))
                .values(status=to, status_reason=reason, updated_at=now)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise Conflict(
                    f"campaign is {current.status}, not {' or '.join(allowed)}",
                    operation="campaign_transition",
                )
            open_run = await tx.session.scalar(
                select(CampaignRun).where(
                    CampaignRun.campaign_id == campaign_id, CampaignRun.ended_at.is_(None)
                )
            )
            if to == "running" and open_run is None:
                tx.session.add(CampaignRun(campaign_id=campaign_id, started_at=now))
            elif to != "running" and open_run is not None:
                open_run.ended_at = now
                open_run.end_reason = reason or to
            if to == "canceled":
                await tx.session.execute(
                    update(CampaignContact)
                    .where(
                        CampaignContact.campaign_id == campaign_id,
                        CampaignContact.status == "pending",
                    )
                    .values(status="skipped", outcome="campaign canceled")
                )
        return await self.get(org, campaign_id)

    # -- aggregates ------------------------------------------------------------------------

    async def aggregates(self, campaign_id: str) -> Aggregates:
        async with self._journal.transaction("campaign_aggregates") as tx:
            rows = await tx.session.execute(
                select(
                    CampaignContact.status,
                    func.count(),
                    func.sum(CampaignContact.attempts),
                    func.sum(CampaignContact.duration_secs),
                    func.sum(cast(CampaignContact.success, Integer)),
                )
                .where(CampaignContact.campaign_id == campaign_id)
                .group_by(CampaignContact.status)
            )
            counts: dict[str, int] = {}
            attempts = success = 0
            duration = 0.0
            for status, count, tries, secs, ok in rows:
                counts[status] = int(count)
                attempts += int(tries or 0)
                duration += float(secs or 0.0)
                success += int(ok or 0)
        return Aggregates(
            numbers=sum(counts.values()),
            pending=counts.get("pending", 0),
            dialing=counts.get("dialing", 0),
            done=counts.get("done", 0),
            failed=counts.get("failed", 0),
            skipped=counts.get("skipped", 0),
            success=success,
            attempts=attempts,
            total_duration_secs=round(duration, 3),
        )

    # -- scheduling (the dialer) -----------------------------------------------------------

    async def active_ids(self) -> list[str]:
        """Campaigns the dialer must look at: running ones, and paused ones with calls still
        out (their outcomes must be settled)."""
        async with self._journal.transaction("active_campaigns") as tx:
            dialing = select(CampaignContact.campaign_id).where(CampaignContact.status == "dialing")
            query = select(Campaign.id).where(
                or_(Campaign.status == "running", Campaign.id.in_(dialing))
            )
            return list(await tx.session.scalars(query.order_by(Campaign.id)))

    async def lease(self, campaign_id: str, owner: str, until: datetime, now: datetime) -> bool:
        """Take (or renew) the right to dial this campaign until ``until``."""
        async with self._journal.transaction("campaign_lease") as tx:
            result = await tx.session.execute(
                update(Campaign)
                .where(
                    Campaign.id == campaign_id,
                    or_(
                        Campaign.lease_owner.is_(None),
                        Campaign.lease_owner == owner,
                        Campaign.lease_until < now,
                    ),
                )
                .values(lease_owner=owner, lease_until=until)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def release(self, owner: str) -> None:
        async with self._journal.transaction("campaign_release") as tx:
            await tx.session.execute(
                update(Campaign)
                .where(Campaign.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def due(self, campaign_id: str, now: datetime, limit: int) -> list[CampaignContact]:
        if limit <= 0:
            return []
        async with self._journal.transaction("campaign_due") as tx:
            query = (
                select(CampaignContact)
                .where(
                    CampaignContact.campaign_id == campaign_id,
                    CampaignContact.status == "pending",
                    or_(
                        CampaignContact.next_attempt_at.is_(None),
                        CampaignContact.next_attempt_at <= now,
                    ),
                )
                .order_by(CampaignContact.position)
                .limit(limit)
            )
            return list(await tx.session.scalars(query))

    async def dialing(self, campaign_id: str) -> list[CampaignContact]:
        async with self._journal.transaction("campaign_dialing") as tx:
            query = select(CampaignContact).where(
                CampaignContact.campaign_id == campaign_id, CampaignContact.status == "dialing"
            )
            return list(await tx.session.scalars(query))

    async def mark_dialing(self, contact_id: int, call_id: str, now: datetime) -> None:
        async with self._journal.transaction("campaign_dial") as tx:
            await tx.session.execute(
                update(CampaignContact)
                .where(CampaignContact.id == contact_id)
                .values(
                    status="dialing",
                    last_call_id=call_id,
                    dialed_at=now,
                    attempts=CampaignContact.attempts + 1,
                )
            )

    async def finish_contact(
        self,
        contact_id: int,
        *,
        status: str,
        outcome: str,
        success: bool = False,
        duration_secs: float = 0.0,
        retry_at: datetime | None = None,
        count_attempt: bool = False,
    ) -> None:
        """Record an attempt's outcome: final (``done``/``failed``) or ``pending`` again with
        ``retry_at``."""
        async with self._journal.transaction("campaign_contact_done") as tx:
            values: dict[str, Any] = {
                "status": status,
                "outcome": outcome,
                "success": success,
                "next_attempt_at": retry_at,
                "duration_secs": CampaignContact.duration_secs + duration_secs,
            }
            if count_attempt:
                values["attempts"] = CampaignContact.attempts + 1
            await tx.session.execute(
                update(CampaignContact).where(CampaignContact.id == contact_id).values(**values)
            )

    async def settled(self, call_ids: Sequence[str]) -> dict[str, Settled]:
        """The ended calls among ``call_ids``."""
        if not call_ids:
            return {}
        async with self._journal.transaction("campaign_settled") as tx:
            calls = await tx.session.execute(
                select(Call.id, Call.status, Call.started_at, Call.ended_at).where(
                    Call.id.in_(call_ids), Call.ended_at.is_not(None)
                )
            )
            ended = {row[0]: row for row in calls}
            machine: set[str] = set()
            if ended:
                events = await tx.session.execute(
                    select(Event.call_id, Event.data).where(
                        and_(Event.call_id.in_(ended), Event.kind == "answered_by")
                    )
                )
                for call_id, data in events:
                    if str((data or {}).get("answered_by", "")).startswith(("machine", "fax")):
                        machine.add(call_id)
        return {
            call_id: Settled(
                status,
                _talk_time(status, started_at, ended_at),
                call_id in machine,
            )
            for call_id, status, started_at, ended_at in ended.values()
        }

    async def unsettled_since(self, call_ids: Sequence[str]) -> dict[str, tuple[str, datetime]]:
        """Status and creation time of the calls among ``call_ids`` still open."""
        if not call_ids:
            return {}
        async with self._journal.transaction("campaign_open_calls") as tx:
            rows = await tx.session.execute(
                select(Call.id, Call.status, Call.created_at).where(
                    Call.id.in_(call_ids), Call.ended_at.is_(None)
                )
            )
            return {call_id: (status, created) for call_id, status, created in rows}


def _talk_time(status: str, started_at: datetime, ended_at: datetime | None) -> float:
    if status not in TALKED or ended_at is None:
        return 0.0
    return max(0.0, (ended_at - started_at).total_seconds())
