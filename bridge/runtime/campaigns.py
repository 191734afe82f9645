"""The campaign dialer: dial each running campaign's numbers, never more than ``max_concurrent``
at a time, inside its calling window, retrying busy / no-answer up to ``max_attempts``.

All state is in the database (:mod:`bridge.journal.campaign_models`), so the dialer is a loop of
ticks that could stop anywhere: each tick, for each campaign it can lease,

1. **settle** — contacts whose call ended get its outcome (done, failed, or pending again with a
   retry time);
2. **complete** — a running campaign with nothing pending or dialing is ``completed``;
3. **dial** — inside the window, ``max_concurrent − dialing`` due contacts are marked ``dialing``
   with a fresh call id *before* Twilio is asked (a crash in between leaves a contact whose call
   never appears: it fails as "never placed" instead of being dialed twice).

The lease (renewed every tick) makes one worker at a time dial a campaign; another worker
takes over when it lapses. Decisions (window, outcome) are pure functions below.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.errors import CallbridgeError, CarrierApiError
from bridge.journal.campaign_models import Campaign, CampaignContact
from bridge.journal.campaigns import CampaignStore, Settled
from bridge.journal.ids import new_call_id
from bridge.journal.store import Conflict, JournalError
from bridge.runtime.outbound import DialRefused, OutboundCall, place_call
from bridge.runtime.services import Services

__all__ = ["CallingWindow", "CampaignDialer", "Outcome", "outcome_of"]

log = logging.getLogger(__name__)

LEASE_S = 15.0
NEVER_PLACED_S = 60.0
"""A contact marked dialing whose call is not in the journal after this long was never dialed."""
NO_FINAL_STATUS_S = 3600.0
"""An open call the carrier never reported on is given up after this long."""
RETRYABLE = ("busy", "no-answer")


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Local hours (and weekdays, ISO 1 = Monday) when a campaign may dial."""

    start: time
    end: time
    zone: ZoneInfo
    days: frozenset[int] = frozenset(range(1, 8))

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> CallingWindow:
        """From ``{"start": "09:00", "end": "18:00", "timezone": "…", "days": [1, …]}``;
        raises ValueError with what is wrong."""
        try:
            zone = ZoneInfo(str(raw.get("timezone", "UTC")))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {raw.get('timezone')!r}") from None
        start, end = time.fromisoformat(str(raw["start"])), time.fromisoformat(str(raw["end"]))
        if start == end:
            raise ValueError("the window's start and end are the same time")
        days = frozenset(int(day) for day in raw.get("days", range(1, 8)))
        if not days or not days <= set(range(1, 8)):
            raise ValueError("days are ISO weekdays 1 (Monday) to 7 (Sunday)")
        return cls(start, end, zone, days)

    def contains(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        at = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return local.isoweekday() in self.days and self.start <= at < self.end
        # over midnight: the evening part belongs to today, the morning part to yesterday
        if at >= self.start:
            return local.isoweekday() in self.days
        yesterday = (local - timedelta(days=1)).isoweekday()
        return at < self.end and yesterday in self.days


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "done" | "failed" | "pending" (a retry)
    outcome: str
    success: bool = False
    retry_at: datetime | None = None


def outcome_of(
    settled: Settled, contact: CampaignContact, campaign: Campaign, now: datetime
) -> Outcome:
    """What one finished call means for its contact."""
    status = settled.status
    if status in ("completed", "transferred"):
        outcome = "voicemail" if settled.machine else status
        return Outcome("done", outcome, success=not settled.machine)
    retry_on = campaign.retry_on or list(RETRYABLE)
    if status in retry_on and contact.attempts < campaign.max_attempts:
        return Outcome("pending", status, retry_at=now + timedelta(seconds=campaign.retry_delay_s))
    return Outcome("failed", status)


class CampaignDialer:
    """One per worker; :meth:`run` until cancelled. ``clock`` is injectable for tests."""

    def __init__(
        self,
        services: Services,
        store: CampaignStore,
        *,
        base_url: Callable[[], str | None],
        tick_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.services = services
        self.store = store
        self.base_url = base_url
        self.tick_s = tick_s
        self.clock = clock
        self.owner = f"dialer-{secrets.token_hex(6)}"
        self._wake = asyncio.Event()
        self._ticking = asyncio.Lock()  # one tick at a time (the loop's and a test's)

    def wake(self) -> None:
        """Look now (a campaign started or resumed)."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.tick()
                except JournalError as exc:
                    log.warning("campaign dialer: journal unavailable: %s", exc)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.tick_s)
                except TimeoutError:
                    pass
        finally:
            try:
                await asyncio.shield(self.store.release(self.owner))
            except (JournalError, asyncio.CancelledError):
                pass

    async def tick(self) -> None:
        async with self._ticking:
            await self._tick()

    async def _tick(self) -> None:
        now = self.clock()
        for campaign_id in await self.store.active_ids():
            if not await self.store.lease(
                campaign_id, self.owner, now + timedelta(seconds=LEASE_S), now
            ):
                continue  # another worker dials this one
            campaign = await self.store.get(None, campaign_id)
            await self._settle(campaign, now)
            if campaign.status == "running":
                await self._advance(campaign, now)

    async def _settle(self, campaign: Campaign, now: datetime) -> None:
        contacts = await self.store.dialing(campaign.id)
        if not contacts:
            return
        ids = [c.last_call_id for c in contacts if c.last_call_id]
        settled = await self.store.settled(ids)
        still_open = await self.store.unsettled_since(ids)
        for contact in contacts:
            call_id = contact.last_call_id or ""
            if call_id in settled:
                result = outcome_of(settled[call_id], contact, campaign, now)
                await self.store.finish_contact(
                    contact.id,
                    status=result.status,
                    outcome=result.outcome,
                    success=result.success,
                    duration_secs=settled[call_id].duration_secs,
                    retry_at=result.retry_at,
                )
            elif call_id in still_open:
                _, created = still_open[call_id]
                if now - created > timedelta(seconds=NO_FINAL_STATUS_S):
                    await self.store.finish_contact(
                        contact.id, status="failed", outcome="no final status from the carrier"
                    )
            elif contact.dialed_at is None or now - contact.dialed_at > timedelta(
                seconds=NEVER_PLACED_S
            ):
                await self.store.finish_contact(
                    contact.id, status="failed", outcome="the call was never placed"
                )

    async def _advance(self, campaign: Campaign, now: datetime) -> None:
        totals = await self.store.aggregates(campaign.id)
        if totals.pending == 0 and totals.dialing == 0:
            await self._transition(campaign, "completed", "every number is done")
            return
        if campaign.window and not CallingWindow.parse(campaign.window).contains(now):
            return
        free = campaign.max_concurrent - totals.dialing
        for contact in await self.store.due(campaign.id, now, free):
            if not await self._dial(campaign, contact, now):
                return

    async def _dial(self, campaign: Campaign, contact: CampaignContact, now: datetime) -> bool:
        """Dial one contact; False when the campaign cannot go on (it is paused)."""
        base = self.base_url()
        if base is None:
            await self._transition(campaign, "paused", "CALLBRIDGE_PUBLIC_URL is not set")
            return False
        call_id = new_call_id()
        await self.store.mark_dialing(contact.id, call_id, now)
        call = OutboundCall(
            to=contact.number,
            agent=campaign.agent,
            from_=campaign.from_number,
            context={**campaign.context, **contact.context},
            machine_detection=campaign.machine_detection,
            campaign_id=campaign.id,
            call_id=call_id,
        )
        try:
            await place_call(self.services, campaign.org_id, call, base_url=base)
        except DialRefused as exc:
            if exc.field in (None, "agent", "from"):  # the campaign's set-up, not this number
                await self.store.finish_contact(contact.id, status="pending", outcome=exc.message)
                await self._transition(campaign, "paused", exc.message)
                return False
            await self.store.finish_contact(contact.id, status="failed", outcome=exc.message)
        except CarrierApiError as exc:
            # journaled as a failed call: the next tick settles it
            log.warning("campaign %s: %s: %s", campaign.id, contact.number, exc)
        except CallbridgeError as exc:
            await self.store.finish_contact(contact.id, status="failed", outcome=str(exc))
        return True

    async def _transition(self, campaign: Campaign, to: str, reason: str) -> None:
        try:
            await self.store.transition(
                None, campaign.id, allowed_from=("running",), to=to, reason=reason
            )
            log.info("campaign %s: %s (%s)", campaign.id, to, reason)
        except Conflict:
            pass  # paused or canceled meanwhile
