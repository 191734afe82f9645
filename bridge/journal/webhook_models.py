"""The tables of event webhooks and post-call work, in the journal's database.

* ``webhook_subscriptions`` — an organization's receivers: URL, the event types wanted, an
  optional agent filter, and the signing secret, sealed with the server's secret key.
* ``webhook_outbox`` — one row per event *per subscription* to deliver, written in the same
  transaction as the journal rows that caused it. Its integer ``id`` orders the rows: the rows of
  one call are written by one writer, batch after batch, so ``id`` order is the call's order.
  ``state`` is ``pending`` until ``delivered`` or ``dead`` (attempts used up); a claimed row
  carries a lease (``lease_owner``, ``lease_until``) — see :mod:`bridge.journal.outbox`.
* ``postcall_jobs`` — one row per ended call, written with the call's end: the post-call step
  (summary, collected fields, then ``call.ended``) to run, leased the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bridge.journal.models import Base, UtcDateTime, _Json, _RowId, utcnow

__all__ = [
    "DEAD",
    "DELIVERED",
    "DONE",
    "EVENT_TYPES",
    "PENDING",
    "OutboxRow",
    "PostcallJob",
    "WebhookSubscription",
]

EVENT_TYPES = ("call.started", "transcript.message", "tool.called", "call.ended")
"""What a subscription may ask for: a call was journaled; a transcript turn; a tool call with its
result; a call ended (with its post-call summary and collected fields)."""
PENDING, DELIVERED, DEAD, DONE = "pending", "delivered", "dead", "done"


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(_Json, default=list)
    agent: Mapped[str | None] = mapped_column(String())
    """Only this agent's calls; ``None``: every call of the organization."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(String())
    sealed_secret: Mapped[str] = mapped_column(Text)
    """The signing secret, Fernet-encrypted; shown once, at creation."""
    secret_last4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index(None, "org_id"),)

    def wants(self, event_type: str, agent: str | None) -> bool:
        """Whether an event of this type, of a call of ``agent``, goes to this subscription."""
        return (
            self.active
            and event_type in (self.events or ())
            and (self.agent is None or self.agent == agent)
        )


class OutboxRow(Base):
    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(_RowId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(26))
    """The event's id: the same for every subscription it goes to (receivers dedupe on it)."""
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    org_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(26))
    agent: Mapped[str | None] = mapped_column(String())
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(_Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)
    """The receiver's HTTP status at the last attempt (``None``: it did not answer)."""
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index(None, "state", "next_attempt_at"),
        Index(None, "subscription_id", "call_id", "id"),
        Index(None, "subscription_id", "id"),
    )


class PostcallJob(Base):
    __tablename__ = "postcall_jobs"

    call_id: Mapped[str] = mapped_column(String(26), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    """``pending`` until the step ran, then ``done``."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index(None, "state", "next_attempt_at"),)
