"""The journal store: calls and their records in SQLite (default) or PostgreSQL.

Everything here is async I/O over one SQLAlchemy :class:`AsyncEngine`. SQLAlchemy and driver
errors are translated into :class:`JournalError` at this boundary::

    CallbridgeError
    └── JournalError         the journal could not read or write (``retryable``: the database was
        │                    unreachable, locked or timed out; not retryable: the write conflicts)
        ├── Conflict         the write breaks a uniqueness rule (a number attached twice)
        └── NotFound         the row is not there (or belongs to another organization)
            └── CallNotFound the call id is not in the journal

Engines are created with ``hide_parameters=True``: error messages and tracebacks carry the SQL but
never the bound values, so a transcript cannot reach the logs through an exception.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, Unpack

from sqlalchemy import Connection, Select, event, insert, inspect, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from bridge.errors import CallbridgeError, ConfigError
from bridge.journal import campaign_models, webhook_models  # noqa: F401 -- their tables join Base.metadata
from bridge.journal.models import (
    UPDATABLE_FIELDS,
    Base,
    Call,
    CallDetail,
    CallSummary,
    CallUpdate,
    Event,
    ToolCall,
    Turn,
    record_row,
)
from bridge.session.actions import JournalAction

__all__ = [
    "CallDetail",
    "CallNotFound",
    "CallSummary",
    "CallUpdate",
    "Conflict",
    "JournalError",
    "JournalStore",
    "JournalTx",
    "NotFound",
]

SQLITE_BUSY_TIMEOUT_MS = 5000
_Record = TypeVar("_Record", Turn, Event, ToolCall)


class JournalError(CallbridgeError):
    """The journal could not read or write. ``operation`` and ``call_id`` say what failed."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        call_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.operation = operation
        self.call_id = call_id


class Conflict(JournalError):
    """The write conflicts with a row already there (a unique number, key or id)."""


class NotFound(JournalError):
    """The row is not in the journal, or not in the caller's organization."""


class CallNotFound(NotFound):
    """The call id is not in the journal (never created, or its creation failed)."""


@contextlib.contextmanager
def _translated(operation: str, call_id: str | None = None) -> Iterator[None]:
    """Turn SQLAlchemy and driver errors into :class:`JournalError`."""
    try:
        yield
    except sa_exc.IntegrityError as exc:
        message = f"{operation} conflicts with the journal ({type(exc.orig).__name__})"
        raise Conflict(message, operation=operation, call_id=call_id, retryable=False) from exc
    except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, OSError) as exc:
        cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        message = f"{operation} failed, journal unavailable: {detail}"
        raise JournalError(message, operation=operation, call_id=call_id, retryable=True) from exc
    except sa_exc.SQLAlchemyError as exc:
        message = f"{operation} failed: {type(exc).__name__}"
        raise JournalError(message, operation=operation, call_id=call_id, retryable=False) from exc


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value


def _json_dumps(value: Any) -> str:
    # A stray non-JSON value (a datetime in event data) is stored as text, not lost with its batch.
    return json.dumps(value, default=str, ensure_ascii=False)


class JournalStore:
    """Reads and writes the journal. Build with :meth:`open`; :meth:`close` when done."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(
        cls, url: str, *, engine_options: Mapping[str, Any] | None = None
    ) -> JournalStore:
        """Connect to ``url`` (e.g. ``sqlite+aiosqlite:///./var/callbridge.db``), create tables.

        For SQLite the file's directory is created and every connection runs in WAL mode with a
        busy timeout and foreign keys on. ``engine_options`` go to ``create_async_engine``.
        """
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError as exc:
            raise ConfigError(f"journal URL is not valid: {exc}") from exc
        options: dict[str, Any] = {"hide_parameters": True, "json_serializer": _json_dumps}
        is_sqlite = parsed.get_backend_name() == "sqlite"
        database = parsed.database or ":memory:"
        if not is_sqlite:
            options["pool_pre_ping"] = True
        elif database == ":memory:":
            options["poolclass"] = StaticPool  # one shared connection, or each sees its own DB
        elif not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        options.update(engine_options or {})
        try:
            engine = create_async_engine(parsed, **options)
        except (sa_exc.ArgumentError, ImportError) as exc:
            raise ConfigError(f"journal URL cannot be used: {exc}") from exc
        if is_sqlite:
            event.listen(engine.sync_engine, "connect", _configure_sqlite)
        store = cls(engine)
        try:
            with _translated("open"):
                async with engine.begin() as conn:
                    await conn.run_sync(Base.metadata.create_all)
                    await conn.run_sync(_add_missing_columns)
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def transaction(
        self, operation: str = "batch", call_id: str | None = None
    ) -> AsyncIterator[JournalTx]:
        """One transaction for several writes (the writer commits a whole batch at once)."""
        with _translated(operation, call_id):
            async with self._sessions.begin() as session:
                yield JournalTx(session)

    async def create_call(
        self, call_id: str, *, carrier: str, started_at: datetime, **fields: Unpack[CallUpdate]
    ) -> None:
        """Open a call's record (``status`` defaults to ``in-progress``)."""
        async with self.transaction("create_call", call_id) as tx:
            await tx.create_call(call_id, carrier=carrier, started_at=started_at, **fields)

    async def update_call(self, call_id: str, **fields: Unpack[CallUpdate]) -> None:
        """Change some of a call's fields (only those in :class:`CallUpdate`)."""
        async with self.transaction("update_call", call_id) as tx:
            await tx.update_call(call_id, **fields)

    async def finish_call(
        self, call_id: str, *, status: str, end_reason: str | None, ended_at: datetime
    ) -> None:
        """Mark the call ended; ``duration_secs`` is ``ended_at - started_at`` (never negative)."""
        async with self.transaction("finish_call", call_id) as tx:
            await tx.finish_call(call_id, status=status, end_reason=end_reason, ended_at=ended_at)

    async def add_records(self, call_id: str, records: Sequence[JournalAction]) -> None:
        """Append records to a call in one transaction, keeping their order."""
        if records:
            async with self.transaction("add_records", call_id) as tx:
                await tx.add_records(call_id, records)

    async def list_calls(
        self,
        *,
        org: str | None = None,
        agent: str | None = None,
        status: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        since_id: str | None = None,
        call_sid: str | None = None,
        limit: int = 50,
    ) -> list[CallSummary]:
        """Calls matching every given filter.

        ``started_after <= started_at < started_before``. With ``since_id``: the calls whose id is
        greater, oldest id first (delta paging); without: newest first.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = select(Call)
        if org is not None:
            query = query.where(Call.org_id == org)
        if agent is not None:
            query = query.where(Call.agent == agent)
        if status is not None:
            query = query.where(Call.status == status)
        if call_sid is not None:
            query = query.where(Call.call_sid == call_sid)
        if started_after is not None:
            query = query.where(Call.started_at >= _aware(started_after, "started_after"))
        if started_before is not None:
            query = query.where(Call.started_at < _aware(started_before, "started_before"))
        if since_id is not None:
            query = query.where(Call.id > since_id).order_by(Call.id)
        else:
            query = query.order_by(Call.started_at.desc(), Call.id.desc())
        with _translated("list_calls"):
            async with self._sessions() as session:
                rows = await session.scalars(query.limit(limit))
                return [row.summary() for row in rows]

    async def get_call(self, call_id: str, *, org: str | None = None) -> CallDetail | None:
        """The call with its transcript, events and tool calls, or ``None`` if unknown (or, with
        ``org``, another organization's)."""
        with _translated("get_call", call_id):
            async with self._sessions() as session:
                row = await session.get(Call, call_id)
                if row is None or (org is not None and row.org_id != org):
                    return None
                turns = await session.scalars(_records_of(Turn, call_id))
                transcript = tuple(turn.record() for turn in turns)
                events = await session.scalars(_records_of(Event, call_id))
                timeline = tuple(item.record() for item in events)
                tools = await session.scalars(_records_of(ToolCall, call_id))
                tool_calls = tuple(tool_call.record() for tool_call in tools)
                summary = row.summary()
        return CallDetail(summary, transcript, timeline, tool_calls)


class JournalTx:
    """The writes of :class:`JournalStore`, inside one open transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    @property
    def session(self) -> AsyncSession:
        """The transaction's ORM session (the control plane's store works through it)."""
        return self._session

    async def create_call(
        self, call_id: str, *, carrier: str, started_at: datetime, **fields: Unpack[CallUpdate]
    ) -> None:
        unknown = set(fields) - UPDATABLE_FIELDS
        if unknown:
            raise TypeError(f"create_call does not know {sorted(unknown)}")
        values: dict[str, Any] = {"status": "in-progress", **fields}
        values["context"] = dict(values.get("context") or {})
        row = Call(
            id=call_id,
            carrier=carrier,
            started_at=_aware(started_at, "started_at"),
            record_count=0,
            **values,
        )
        self._session.add(row)

    async def update_call(self, call_id: str, **fields: Unpack[CallUpdate]) -> None:
        unknown = set(fields) - UPDATABLE_FIELDS
        if unknown:
            raise TypeError(f"update_call cannot change {sorted(unknown)}")
        if not fields:
            return
        values: dict[str, Any] = dict(fields)
        if "context" in values:
            values["context"] = dict(values["context"] or {})
        await self._session.flush()
        await _update_row(self._session, "update_call", call_id, values)

    async def finish_call(
        self, call_id: str, *, status: str, end_reason: str | None, ended_at: datetime
    ) -> None:
        _aware(ended_at, "ended_at")
        session = self._session
        await session.flush()
        started_at = await session.scalar(select(Call.started_at).where(Call.id == call_id))
        if started_at is None:
            raise _not_found("finish_call", call_id)
        duration = max(0.0, (ended_at - started_at).total_seconds())
        values = {"status": status, "end_reason": end_reason, "ended_at": ended_at}
        await _update_row(session, "finish_call", call_id, values | {"duration_secs": duration})

    async def add_records(self, call_id: str, records: Sequence[JournalAction]) -> None:
        if not records:
            return
        session = self._session
        await session.flush()
        end = await session.scalar(
            update(Call)
            .where(Call.id == call_id)
            .values(record_count=Call.record_count + len(records))
            .returning(Call.record_count)
            .execution_options(synchronize_session=False)
        )
        if end is None:
            raise _not_found("add_records", call_id)
        tables: dict[type[Base], list[dict[str, Any]]] = {}
        for seq, record in enumerate(records, start=end - len(records)):
            table, row = record_row(call_id, seq, record)
            tables.setdefault(table, []).append(row)
        for model, rows in tables.items():
            await session.execute(insert(model), rows)


def _not_found(operation: str, call_id: str) -> CallNotFound:
    return CallNotFound(f"call {call_id} not found", operation=operation, call_id=call_id)


async def _update_row(
    session: AsyncSession, operation: str, call_id: str, values: dict[str, Any]
) -> None:
    changed = await session.scalar(
        update(Call)
        .where(Call.id == call_id)
        .values(**values)
        .returning(Call.id)
        .execution_options(synchronize_session=False)
    )
    if changed is None:
        raise _not_found(operation, call_id)


def _records_of(model: type[_Record], call_id: str) -> Select[_Record]:
    query = select(model).where(model.call_id == call_id)
    return query.order_by(model.time_in_call_secs, model.seq)


def _add_missing_columns(conn: Connection) -> None:
    """Additive schema upgrades: a column (or index) the models have and an existing table lacks
    is added (every such column is nullable or has a server default). Nothing is ever dropped or
    changed; a change that needs more than this gets a real migration. A new index on a big
    table is built at the first start of the new version (PostgreSQL locks writes meanwhile)."""
    inspector = inspect(conn)
    preparer = conn.dialect.identifier_preparer
    for table in Base.metadata.sorted_tables:
        have = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            default = ""
            if column.server_default is not None:
                value = str(column.server_default.arg).replace("'", "''")  # type: ignore[attr-defined]
                default = f" NOT NULL DEFAULT '{value}'"
            conn.execute(
                text(
                    f"ALTER TABLE {preparer.quote(table.name)} "
                    f"ADD COLUMN {preparer.quote(column.name)} {kind}{default}"
                )
            )
        # create_all skips a table that exists, and with it the indexes added since.
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()
