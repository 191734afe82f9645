"""The store's behaviour, run against SQLite and PostgreSQL alike (see conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import sqlite

from bridge.errors import CallbridgeError, ConfigError
from bridge.journal.ids import new_call_id
from bridge.journal.models import UtcDateTime
from bridge.journal.store import CallNotFound, JournalError, JournalStore
from bridge.session.actions import JournalEvent, JournalToolCall, JournalTurn

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
NAIVE = datetime(2025, 1, 1)  # no tzinfo, on purpose
PLUS_FIVE = timezone(timedelta(hours=5))


async def _call(store: JournalStore, started_at: datetime = T0, **fields: str) -> str:
    call_id = new_call_id()
    await store.create_call(call_id, carrier="twilio", started_at=started_at, **fields)
    return call_id


async def test_round_trip_create_records_finish(store: JournalStore) -> None:
    call_id = new_call_id()
    await store.create_call(
        call_id,
        carrier="twilio",
        started_at=T0,
        agent="support",
        call_sid="CA123",
        stream_sid="MZ456",
        from_number="+15550001111",
        to_number="+15550002222",
        context={"customer": {"tier": "gold"}, "lang": "en"},
    )
    tool = JournalToolCall("tc_1", "lookup", {"order": 42}, '{"ok":true}', True, 3.5, 120.0)
    await store.add_records(
        call_id,
        [
            JournalEvent("call.started", 0.0, {"codec": "pcmu"}),
            JournalTurn("agent", "Hello, how can I help?", 0.4),
            JournalTurn("user", "Where is my order?", 2.0),
            tool,
        ],
    )
    # A second batch: a turn at an earlier time sorts before, a tie keeps the emission order.
    await store.add_records(
        call_id,
        [
            JournalTurn("agent", "It ships today.", 4.0, interrupted=True),
            JournalTurn("user", "uh", 2.0),
            JournalEvent("barge_in", 4.2),
        ],
    )
    await store.update_call(call_id, agent="support-v2")
    await store.finish_call(
        call_id,
        status="completed",
        end_reason="caller hung up",
        ended_at=T0 + timedelta(seconds=65.5),
    )

    detail = await store.get_call(call_id)
    assert detail is not None
    call = detail.call
    assert (call.id, call.carrier, call.agent, call.status) == (
        call_id,
        "twilio",
        "support-v2",
        "completed",
    )
    assert (call.call_sid, call.stream_sid) == ("CA123", "MZ456")
    assert (call.from_number, call.to_number) == ("+15550001111", "+15550002222")
    assert call.started_at == T0
    assert call.ended_at == T0 + timedelta(seconds=65.5)
    assert call.duration_secs == pytest.approx(65.5)
    assert call.end_reason == "caller hung up"
    assert call.context == {"customer": {"tier": "gold"}, "lang": "en"}
    assert detail.transcript == (
        JournalTurn("agent", "Hello, how can I help?", 0.4),
        JournalTurn("user", "Where is my order?", 2.0),
        JournalTurn("user", "uh", 2.0),
        JournalTurn("agent", "It ships today.", 4.0, interrupted=True),
    )
    assert detail.events == (
        JournalEvent("call.started", 0.0, {"codec": "pcmu"}),
        JournalEvent("barge_in", 4.2, {}),
    )
    assert detail.tool_calls == (tool,)


async def test_many_records_with_equal_times_keep_emission_order(store: JournalStore) -> None:
    call_id = await _call(store)
    turns = [JournalTurn("user", f"t{n}", 1.0) for n in range(60)]
    for start in range(0, 60, 7):
        await store.add_records(call_id, turns[start : start + 7])
    detail = await store.get_call(call_id)
    assert detail is not None
    assert detail.transcript == tuple(turns)


async def test_unknown_call(store: JournalStore) -> None:
    missing = new_call_id()
    assert await store.get_call(missing) is None
    with pytest.raises(CallNotFound) as caught:
        await store.add_records(missing, [JournalTurn("user", "hi", 0.0)])
    assert (caught.value.call_id, caught.value.operation, caught.value.retryable) == (
        missing,
        "add_records",
        False,
    )
    with pytest.raises(CallNotFound):
        await store.update_call(missing, status="failed")
    with pytest.raises(CallNotFound):
        await store.finish_call(missing, status="failed", end_reason=None, ended_at=T0)
    await store.add_records(missing, [])  # nothing to write, nothing to check


async def test_duplicate_call_id_is_a_non_retryable_journal_error(store: JournalStore) -> None:
    call_id = await _call(store)
    with pytest.raises(JournalError) as caught:
        await store.create_call(call_id, carrier="twilio", started_at=T0)
    assert isinstance(caught.value, CallbridgeError)
    assert not caught.value.retryable
    assert caught.value.call_id == call_id


async def test_bad_arguments_are_refused_before_the_database(store: JournalStore) -> None:
    call_id = await _call(store)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.create_call(new_call_id(), carrier="x", started_at=NAIVE)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.finish_call(call_id, status="x", end_reason=None, ended_at=NAIVE)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.list_calls(started_after=NAIVE)
    with pytest.raises(TypeError, match="carrier"):
        await store.update_call(call_id, carrier="other")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="limit"):
        await store.list_calls(limit=0)


async def test_values_the_driver_refuses_are_a_non_retryable_journal_error(
    store: JournalStore,
) -> None:
    call_id = await _call(store)
    with pytest.raises(JournalError) as caught:
        await store.update_call(call_id, agent=object())  # type: ignore[typeddict-item]
    assert not caught.value.retryable
    assert caught.value.operation == "update_call"


def test_utc_datetime_refuses_naive_values_whatever_the_caller_checked() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        UtcDateTime().process_bind_param(NAIVE, sqlite.dialect())


async def test_update_call_changes_fields_and_updated_at(store: JournalStore) -> None:
    call_id = await _call(store, agent="a")
    before = await store.get_call(call_id)
    await store.update_call(call_id)  # no fields: nothing happens
    await store.update_call(call_id, call_sid="CA9", context={"k": [1, 2]}, status="transferring")
    after = await store.get_call(call_id)
    assert before is not None
    assert after is not None
    assert (after.call.call_sid, after.call.status, after.call.agent) == (
        "CA9",
        "transferring",
        "a",
    )
    assert after.call.context == {"k": [1, 2]}
    assert after.call.updated_at > before.call.updated_at
    assert after.call.created_at == before.call.created_at


async def test_duration_is_never_negative(store: JournalStore) -> None:
    call_id = await _call(store)
    await store.finish_call(
        call_id, status="failed", end_reason="engine down", ended_at=T0 - timedelta(seconds=1)
    )
    detail = await store.get_call(call_id)
    assert detail is not None
    assert detail.call.duration_secs == 0.0


async def test_list_filters(store: JournalStore) -> None:
    a1 = await _call(store, T0, agent="sales", call_sid="CA1")
    a2 = await _call(store, T0 + timedelta(hours=1), agent="support", call_sid="CA2")
    a3 = await _call(store, T0 + timedelta(hours=2), agent="sales", call_sid="CA3")
    a4 = await _call(store, T0 + timedelta(days=1), agent="sales")
    await store.finish_call(a3, status="failed", end_reason="engine", ended_at=T0)

    async def ids(**filters: object) -> list[str]:
        return [call.id for call in await store.list_calls(**filters)]  # type: ignore[arg-type]

    assert await ids() == [a4, a3, a2, a1]  # newest first
    assert await ids(limit=2) == [a4, a3]
    assert await ids(agent="sales") == [a4, a3, a1]
    assert await ids(status="in-progress") == [a4, a2, a1]
    assert await ids(status="failed", agent="sales") == [a3]
    assert await ids(call_sid="CA2") == [a2]
    assert await ids(agent="nobody") == []
    # started_after is inclusive, started_before exclusive
    assert await ids(started_after=T0 + timedelta(hours=1)) == [a4, a3, a2]
    assert await ids(started_before=T0 + timedelta(hours=2)) == [a2, a1]
    window = {"started_after": T0, "started_before": T0 + timedelta(hours=3)}
    assert await ids(**window, agent="sales") == [a3, a1]


async def test_since_id_pages_through_calls_in_creation_order(store: JournalStore) -> None:
    created = [await _call(store, T0 + timedelta(minutes=n), agent="bot") for n in range(7)]
    await _call(store, agent="other")
    seen: list[str] = []
    cursor = "0" * 26
    while page := await store.list_calls(since_id=cursor, agent="bot", limit=3):
        assert [call.id for call in page] == sorted(call.id for call in page)
        seen.extend(call.id for call in page)
        cursor = page[-1].id
    assert seen == created
    later = await _call(store, agent="bot")
    assert [call.id for call in await store.list_calls(since_id=cursor, agent="bot")] == [later]


async def test_datetimes_come_back_aware_in_utc(store: JournalStore) -> None:
    started = datetime(2025, 6, 1, 14, 0, 0, 123456, tzinfo=PLUS_FIVE)  # 09:00:00.123456Z
    call_id = await _call(store, started)
    await store.finish_call(
        call_id, status="completed", end_reason=None, ended_at=started + timedelta(minutes=2)
    )
    detail = await store.get_call(call_id)
    assert detail is not None
    call = detail.call
    for stamp in (call.started_at, call.ended_at, call.created_at, call.updated_at):
        assert stamp is not None
        assert stamp.utcoffset() == timedelta(0)
    assert call.started_at == started  # the same instant, to the microsecond
    assert call.started_at.hour == 9
    assert call.duration_secs == pytest.approx(120.0)
    # bounds in another zone select by instant, not by wall-clock text
    just_before = datetime(2025, 6, 1, 8, 59, tzinfo=UTC).astimezone(PLUS_FIVE)
    just_after = datetime(2025, 6, 1, 9, 1, tzinfo=UTC).astimezone(PLUS_FIVE)
    assert [c.id for c in await store.list_calls(started_after=just_before)] == [call_id]
    assert await store.list_calls(started_after=just_after) == []
    assert [c.id for c in await store.list_calls(started_before=just_after)] == [call_id]


async def test_json_columns_keep_nested_data_and_stringify_the_rest(store: JournalStore) -> None:
    call_id = await _call(store)
    data = {"nested": {"list": [1, 2.5, None, True]}, "text": "héllo ☎"}
    when = datetime(2025, 1, 1, tzinfo=UTC)
    await store.add_records(call_id, [JournalEvent("x", 0.0, data | {"when": when})])
    detail = await store.get_call(call_id)
    assert detail is not None
    assert detail.events[0].data == data | {"when": str(when)}


async def test_open_refuses_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        await JournalStore.open("not a url")
    with pytest.raises(ConfigError):
        await JournalStore.open("nosuchdialect://x/y")


async def test_unreachable_database_is_a_retryable_journal_error() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    with pytest.raises(JournalError) as caught:
        await JournalStore.open(url, engine_options={"connect_args": {"timeout": 5}})
    assert caught.value.retryable
    assert caught.value.operation == "open"


async def test_sqlite_file_directory_wal_and_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "callbridge.db"
    store = await JournalStore.open(f"sqlite+aiosqlite:///{path}")
    try:
        assert path.exists()
        async with store.engine.connect() as conn:
            assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await conn.scalar(text("PRAGMA busy_timeout")) == 5000
            assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
    finally:
        await store.close()


async def test_sqlite_in_memory_shares_one_database() -> None:
    store = await JournalStore.open("sqlite+aiosqlite://")
    try:
        call_id = await _call(store)
        assert await store.get_call(call_id) is not None
    finally:
        await store.close()


async def test_reopening_keeps_the_data(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'j.db'}"
    store = await JournalStore.open(url)
    call_id = await _call(store)
    await store.close()
    store = await JournalStore.open(url)  # create_all leaves existing tables alone
    try:
        assert await store.get_call(call_id) is not None
    finally:
        await store.close()
