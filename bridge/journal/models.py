"""The journal's tables (SQLAlchemy 2 declarative), portable between SQLite and PostgreSQL.

``calls`` holds one row per call; ``turns``, ``events`` and ``tool_calls`` hold what happened in
it, written from and read back as the session's ``Journal*`` records. The three record tables
share one per-call ``seq`` (allocated from ``calls.record_count``), so the order the call core
emitted them in survives the split into three tables. :class:`CallSummary` and
:class:`CallDetail` are the frozen read models the store returns.

Datetimes are stored in UTC and always come back timezone-aware (:class:`UtcDateTime`): PostgreSQL
keeps ``timestamptz``, and SQLite stores naive UTC text, which compares in time order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bridge.session.actions import JournalAction, JournalEvent, JournalToolCall, JournalTurn

__all__ = [
    "DEFAULT_ORG",
    "E164",
    "SCOPES",
    "ApiKey",
    "Base",
    "Call",
    "CallDetail",
    "CallSummary",
    "CallUpdate",
    "Credential",
    "Event",
    "Organization",
    "PhoneNumber",
    "RoutingRule",
    "ToolCall",
    "Turn",
    "UtcDateTime",
    "is_e164",
    "record_row",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that accepts only aware datetimes and returns them in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("the journal stores timezone-aware datetimes only")
        value = value.astimezone(UTC)
        # SQLite has no timezone type: store naive UTC so stored text compares in time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
_Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_RowId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


@dataclass(frozen=True, slots=True)
class CallSummary:
    """One call as listed: who, when, how it ended. Datetimes are aware, in UTC."""

    id: str
    carrier: str
    status: str
    started_at: datetime
    org_id: str
    direction: str
    campaign_id: str | None
    agent: str | None
    call_sid: str | None
    stream_sid: str | None
    from_number: str | None
    to_number: str | None
    ended_at: datetime | None
    duration_secs: float | None
    end_reason: str | None
    context: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    recording: str | None = None
    """The call's recording: its file name in the recordings directory (``None``: none)."""
    summary: str | None = None
    """The post-call summary (``None``: not made, or not yet)."""
    collected: Mapping[str, Any] | None = None
    """The agent's ``collect_fields`` as extracted after the call (a missing one is ``None``)."""


@dataclass(frozen=True, slots=True)
class CallDetail:
    """A call with its records, each ordered by time in call, then by the order emitted."""

    call: CallSummary
    transcript: tuple[JournalTurn, ...]
    events: tuple[JournalEvent, ...]
    tool_calls: tuple[JournalToolCall, ...]


class CallUpdate(TypedDict, total=False):
    """The fields of a call that may change after it was created."""

    agent: str | None
    call_sid: str | None
    stream_sid: str | None
    from_number: str | None
    to_number: str | None
    status: str
    context: Mapping[str, Any] | None
    org_id: str
    direction: str
    campaign_id: str | None
    recording: str | None


UPDATABLE_FIELDS = frozenset(CallUpdate.__annotations__)


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    direction: Mapped[str] = mapped_column(String(16), default="inbound", server_default="inbound")
    campaign_id: Mapped[str | None] = mapped_column(String(26))
    carrier: Mapped[str] = mapped_column(String())
    call_sid: Mapped[str | None] = mapped_column(String())
    stream_sid: Mapped[str | None] = mapped_column(String())
    agent: Mapped[str | None] = mapped_column(String())
    from_number: Mapped[str | None] = mapped_column(String())
    to_number: Mapped[str | None] = mapped_column(String())
    status: Mapped[str] = mapped_column(String())
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    duration_secs: Mapped[float | None] = mapped_column(Float)
    end_reason: Mapped[str | None] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(_Json, default=dict)
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    recording: Mapped[str | None] = mapped_column(String())
    summary_text: Mapped[str | None] = mapped_column("summary", Text)
    """The post-call summary (column ``summary``; the attribute name is taken by the method)."""
    collected: Mapped[dict[str, Any] | None] = mapped_column(_Json)

    __table_args__ = (
        Index(None, "started_at"),
        Index(None, "org_id", "started_at"),
        Index(None, "agent", "started_at"),
        Index(None, "status", "started_at"),
        Index(None, "call_sid"),
    )

    def summary(self) -> CallSummary:
        return CallSummary(
            id=self.id,
            carrier=self.carrier,
            status=self.status,
            started_at=self.started_at,
            org_id=self.org_id,
            direction=self.direction,
            campaign_id=self.campaign_id,
            agent=self.agent,
            call_sid=self.call_sid,
            stream_sid=self.stream_sid,
            from_number=self.from_number,
            to_number=self.to_number,
            ended_at=self.ended_at,
            duration_secs=self.duration_secs,
            end_reason=self.end_reason,
            context=self.context or {},
            created_at=self.created_at,
            updated_at=self.updated_at,
            recording=self.recording,
            summary=self.summary_text,
            collected=self.collected,
        )


class Turn(Base):
    __tablename__ = "turns"

    id: Mapped[int] = mapped_column(_RowId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String())
    text: Mapped[str] = mapped_column(Text)
    time_in_call_secs: Mapped[float] = mapped_column(Float)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index(None, "call_id", "seq", unique=True),)

    def record(self) -> JournalTurn:
        return JournalTurn(self.role, self.text, self.time_in_call_secs, self.interrupted)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(_RowId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String())
    time_in_call_secs: Mapped[float] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(_Json, default=dict)

    __table_args__ = (Index(None, "call_id", "seq", unique=True),)

    def record(self) -> JournalEvent:
        return JournalEvent(self.kind, self.time_in_call_secs, self.data or {})


class ToolCall(Base):
    __tablename__ = "tool_calls"

    id: Mapped[int] = mapped_column(_RowId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    tool_call_id: Mapped[str] = mapped_column(String())
    name: Mapped[str] = mapped_column(String())
    arguments: Mapped[dict[str, Any]] = mapped_column(_Json, default=dict)
    output: Mapped[str] = mapped_column(Text)
    ok: Mapped[bool] = mapped_column(Boolean)
    time_in_call_secs: Mapped[float] = mapped_column(Float)
    duration_ms: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index(None, "call_id", "seq", unique=True),)

    def record(self) -> JournalToolCall:
        return JournalToolCall(
            call_id=self.tool_call_id,
            name=self.name,
            arguments=self.arguments or {},
            output=self.output,
            ok=self.ok,
            time_in_call_secs=self.time_in_call_secs,
            duration_ms=self.duration_ms,
        )


def record_row(
    call_id: str, seq: int, record: JournalAction
) -> tuple[type[Turn] | type[Event] | type[ToolCall], dict[str, Any]]:
    """The table and column values that store ``record`` as the ``seq``-th record of a call."""
    common = {"call_id": call_id, "seq": seq, "time_in_call_secs": record.time_in_call_secs}
    match record:
        case JournalTurn():
            fields = {"role": record.role, "text": record.text, "interrupted": record.interrupted}
            return Turn, common | fields
        case JournalEvent():
            return Event, common | {"kind": record.kind, "data": dict(record.data)}
        case JournalToolCall():
            return ToolCall, common | {
                "tool_call_id": record.call_id,
                "name": record.name,
                "arguments": dict(record.arguments),
                "output": record.output,
                "ok": record.ok,
                "duration_ms": record.duration_ms,
            }


# --- the control plane: organizations, API keys, numbers, routing, credentials ----------

DEFAULT_ORG = "default"
"""The organization of calls, agents and keys that name none."""
SCOPES = ("read", "write", "admin")
"""API key scopes, each including the ones before it: admin ⊃ write ⊃ read."""
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def scope_includes(have: str, need: str) -> bool:
    """Whether scope ``have`` includes ``need`` (admin ⊃ write ⊃ read)."""
    return SCOPES.index(have) >= SCOPES.index(need)


def is_e164(number: str) -> bool:
    """``+`` then 7 to 15 digits, the first not 0 (ITU-T E.164)."""
    return E164.fullmatch(number) is not None


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String())
    scope: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index(None, "org_id"),)

    def allows(self, scope: str) -> bool:
        """Whether this key's scope includes ``scope``."""
        return scope_includes(self.scope, scope)


class PhoneNumber(Base):
    __tablename__ = "numbers"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(16), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_sid: Mapped[str | None] = mapped_column(String())
    label: Mapped[str | None] = mapped_column(String())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    inbound_agent: Mapped[str | None] = mapped_column(String())
    outbound_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index(None, "org_id", "number"),)


class RoutingRule(Base):
    __tablename__ = "routing_rules"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(16))
    agent: Mapped[str] = mapped_column(String())
    context: Mapped[dict[str, Any]] = mapped_column(_Json, default=dict)
    caller_prefix: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=100)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index(None, "org_id", "number"),)

    def matches(self, caller: str | None) -> bool:
        return self.active and (
            not self.caller_prefix or (caller or "").startswith(self.caller_prefix)
        )


class Credential(Base):
    __tablename__ = "credentials"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    sealed: Mapped[str] = mapped_column(Text)
    """The fields (JSON), Fernet-encrypted: never leaves the server."""
    hints: Mapped[dict[str, str]] = mapped_column(_Json, default=dict)
    """Per field, its last four characters: all the API ever shows."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index(None, "org_id", "provider", unique=True),)
