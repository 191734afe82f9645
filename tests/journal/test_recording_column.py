"""``calls.recording``: added to a journal made before it, and set through the writer."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bridge.journal.ids import new_call_id
from bridge.journal.writer import JournalWriter
from tests.journal.conftest import sqlite_store
from tests.journal.test_control_store import OLD_CALLS

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


async def test_an_old_journal_gets_the_column_and_keeps_its_calls(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_id = new_call_id()
    stamp = "2025-03-01 09:30:00.000000"
    with sqlite3.connect(path) as db:
        db.execute(OLD_CALLS)
        db.execute(
            "INSERT INTO calls (id, carrier, status, started_at, context, record_count, "
            "created_at, updated_at) VALUES (?, 'twilio', 'completed', ?, '{}', 0, ?, ?)",
            (old_id, stamp, stamp, stamp),
        )
    db.close()

    async with sqlite_store(path) as store:
        old = await store.get_call(old_id)
        assert old is not None and old.call.recording is None
        writer = JournalWriter(store, linger_s=0)
        await writer.start()
        new_id = new_call_id()
        writer.call_started(new_id, carrier="twilio", started_at=T0)
        writer.call_updated(new_id, recording=f"{new_id}.wav")
        await writer.close()
        new = await store.get_call(new_id)
        assert new is not None and new.call.recording == f"{new_id}.wav"
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(calls)")}
    db.close()
    assert "recording" in columns
