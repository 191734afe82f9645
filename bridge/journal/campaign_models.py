"""The tables of dialer campaigns, in the journal's database.

* ``campaigns`` — what to dial with (agent, caller id, context, machine detection), how
  (``max_concurrent``, retries, calling window) and where it stands (``status``). The scheduling
  lease (``lease_owner`` / ``lease_until``) makes one worker at a time dial a campaign, so
  ``max_concurrent`` holds across workers.
* ``campaign_contacts`` — one row per number, in list order: ``pending`` → ``dialing`` (its call
  is ``last_call_id``) → ``done`` / ``failed``, or back to ``pending`` with ``next_attempt_at``
  for a retry. This table *is* the remaining list: a pause or a restart loses nothing.
* ``campaign_runs`` — each stretch from start/resume to pause/completion.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bridge.journal.models import Base, UtcDateTime, _Json, _RowId, utcnow

__all__ = [
    "CAMPAIGN_STATUSES",
    "CONTACT_STATUSES",
    "Campaign",
    "CampaignContact",
    "CampaignRun",
]

CAMPAIGN_STATUSES = ("draft", "running", "paused", "completed", "canceled")
CONTACT_STATUSES = ("pending", "dialing", "done", "failed", "skipped")


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String())
    agent: Mapped[str] = mapped_column(String())
    from_number: Mapped[str | None] = mapped_column(String(16))
    context: Mapped[dict[str, Any]] = mapped_column(_Json, default=dict)
    machine_detection: Mapped[str | None] = mapped_column(String(32))
    max_concurrent: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    retry_on: Mapped[list[str]] = mapped_column(_Json, default=list)
    retry_delay_s: Mapped[float] = mapped_column(Float, default=300.0)
    window: Mapped[dict[str, Any] | None] = mapped_column(_Json)
    """``{"start": "09:00", "end": "18:00", "timezone": "Europe/Paris", "days": [1..7]}``."""
    status: Mapped[str] = mapped_column(String(16), default="draft")
    status_reason: Mapped[str | None] = mapped_column(String())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index(None, "org_id"), Index(None, "status"))


class CampaignContact(Base):
    __tablename__ = "campaign_contacts"

    id: Mapped[int] = mapped_column(_RowId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(16))
    context: Mapped[dict[str, Any]] = mapped_column(_Json, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_call_id: Mapped[str | None] = mapped_column(String(26))
    dialed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    outcome: Mapped[str | None] = mapped_column(String())
    """The last call's status (``completed``, ``busy``, ``no-answer``…) or why it was not dialed."""
    success: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_secs: Mapped[float] = mapped_column(Float, default=0.0)
    """All attempts' call time together."""

    __table_args__ = (Index(None, "campaign_id", "status", "position"),)


class CampaignRun(Base):
    __tablename__ = "campaign_runs"

    id: Mapped[int] = mapped_column(_RowId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    end_reason: Mapped[str | None] = mapped_column(String())

    __table_args__ = (Index(None, "campaign_id"),)
