"""The writer: batching, per-call order, retries, flush, the bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bridge.journal.ids import new_call_id
from bridge.journal.store import JournalError, JournalStore, JournalTx
from bridge.journal.writer import JournalWriter
from bridge.session.actions import JournalAction, JournalEvent, JournalToolCall, JournalTurn

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
NAIVE = datetime(2025, 1, 1)  # no tzinfo, on purpose
SECRET = "my card number is 4111"  # must never show up in a log line


class SpyStore(JournalStore):
    """A real store that counts ``add_records`` calls and transactions, and can fail or block.

    Both write paths go through :meth:`transaction`, so the spy sees single writes and whole
    batches alike.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batches: list[tuple[str, int]] = []
        self.transactions = 0
        self.failures: list[BaseException] = []  # raised one per attempt, first in first out
        self.fail_calls: set[str] = set()  # add_records for these always fails
        self.gate: asyncio.Event | None = None

    @contextlib.asynccontextmanager
    async def transaction(
        self, operation: str = "batch", call_id: str | None = None
    ) -> AsyncIterator[JournalTx]:
        self.transactions += 1
        async with super().transaction(operation, call_id) as tx:
            yield _SpyTx(tx, self)  # type: ignore[arg-type]


class _SpyTx:
    def __init__(self, tx: JournalTx, spy: SpyStore) -> None:
        self._tx, self._spy = tx, spy
        self.create_call = tx.create_call
        self.update_call = tx.update_call
        self.finish_call = tx.finish_call

    async def add_records(self, call_id: str, records: Sequence[JournalAction]) -> None:
        spy = self._spy
        spy.batches.append((call_id, len(records)))
        if spy.gate is not None:
            await spy.gate.wait()
        if call_id in spy.fail_calls:
            raise JournalError(f"refused for {call_id}", operation="add_records", retryable=False)
        if spy.failures:
            raise spy.failures.pop(0)
        await self._tx.add_records(call_id, records)


@pytest.fixture
async def spy(sqlite_journal: JournalStore) -> SpyStore:
    return SpyStore(sqlite_journal.engine)  # closed with sqlite_journal


def _start(writer: JournalWriter, call_id: str) -> None:
    writer.call_started(call_id, carrier="twilio", started_at=T0, agent="bot")


def _turn(n: int) -> JournalTurn:
    return JournalTurn("user" if n % 2 else "agent", f"{SECRET} #{n}", 1.0)


async def test_interleaved_calls_keep_their_order(store: JournalStore) -> None:
    rng = random.Random(1234)
    calls = {new_call_id(): 0 for _ in range(12)}
    expected: dict[str, list[JournalAction]] = {call_id: [] for call_id in calls}
    writer = JournalWriter(store, max_batch=50)
    await writer.start()
    for call_id in calls:
        _start(writer, call_id)
    for step in range(600):
        call_id = rng.choice(list(calls))
        n = calls[call_id] = calls[call_id] + 1
        action: JournalAction = (
            _turn(n) if n % 3 else JournalEvent("tick", 1.0, {"n": n})
        )  # equal times: only the submission order can sort them
        writer.record(call_id, action)
        expected[call_id].append(action)
        if step % 97 == 0:
            await asyncio.sleep(0)  # let the writer take partial batches
    for call_id in calls:
        writer.call_finished(
            call_id, status="completed", end_reason="done", ended_at=T0 + timedelta(seconds=9)
        )
    await writer.flush()
    assert writer.pending == 0
    for call_id, actions in expected.items():
        detail = await store.get_call(call_id)
        assert detail is not None
        assert detail.transcript == tuple(a for a in actions if isinstance(a, JournalTurn))
        assert detail.events == tuple(a for a in actions if isinstance(a, JournalEvent))
        assert detail.call.status == "completed"
        assert detail.call.duration_secs == pytest.approx(9.0)
    await writer.close()


async def test_consecutive_records_of_a_call_share_one_transaction(spy: SpyStore) -> None:
    writer = JournalWriter(spy)
    calls = [new_call_id() for _ in range(10)]
    for call_id in calls:
        _start(writer, call_id)
    for n in range(20):
        for call_id in calls:  # fully interleaved
            writer.record(call_id, _turn(n))
    await writer.start()
    await writer.flush()
    assert sorted(spy.batches) == sorted((call_id, 20) for call_id in calls)
    await writer.close()


async def test_a_failing_write_is_retried_and_logged(
    spy: SpyStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = JournalWriter(spy, retry_delays=(0, 0), group_commit=False)
    call_id = new_call_id()
    _start(writer, call_id)
    writer.record(call_id, _turn(1))
    spy.failures.append(JournalError("database is locked", operation="add_records", retryable=True))
    await writer.start()
    with caplog.at_level(logging.WARNING, logger="bridge.journal.writer"):
        await writer.flush()
    detail = await spy.get_call(call_id)
    assert detail is not None
    assert detail.transcript == (_turn(1),)
    assert len(spy.batches) == 2
    assert writer.failed == 0
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert call_id in warning.getMessage()
    assert warning.call_id == call_id  # type: ignore[attr-defined]
    assert SECRET not in caplog.text
    await writer.close()


async def test_the_writer_survives_a_store_that_keeps_failing(
    spy: SpyStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = JournalWriter(spy, retry_delays=(0, 0), group_commit=False)
    doomed, fine, unlucky = new_call_id(), new_call_id(), new_call_id()
    for call_id in (doomed, fine, unlucky):
        _start(writer, call_id)
        writer.record(call_id, _turn(1))
    spy.fail_calls.add(doomed)  # not retryable: one attempt
    spy.failures.extend(RuntimeError(SECRET) for _ in range(3))  # unexpected: every attempt
    await writer.start()
    with caplog.at_level(logging.WARNING, logger="bridge.journal.writer"):
        await writer.flush()
    assert writer.failed == 2
    assert [c for c, _ in spy.batches] == [doomed, fine, fine, fine, unlucky]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.call_id for r in errors] == [doomed, fine]  # type: ignore[attr-defined]
    assert all(r.call_id in r.getMessage() for r in errors)  # type: ignore[attr-defined]
    assert SECRET not in caplog.text
    assert all(SECRET not in (r.exc_text or "") for r in caplog.records)
    assert (await spy.get_call(unlucky)).transcript == (_turn(1),)  # type: ignore[union-attr]
    # still running: later writes go through
    writer.record(doomed, JournalEvent("still", 2.0))
    writer.call_finished(doomed, status="failed", end_reason="x", ended_at=T0)
    await writer.flush()
    detail = await spy.get_call(doomed)
    assert detail is not None
    assert detail.call.status == "failed"
    await writer.close()


async def test_writes_that_cannot_succeed_are_logged_once(
    spy: SpyStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = JournalWriter(spy, retry_delays=(0, 0), group_commit=False)
    never_started, twice = new_call_id(), new_call_id()
    writer.call_updated(never_started, call_sid="CA1")
    writer.call_finished(never_started, status="completed", end_reason=None, ended_at=T0)
    _start(writer, twice)
    _start(writer, twice)
    await writer.start()
    with caplog.at_level(logging.WARNING, logger="bridge.journal.writer"):
        await writer.flush()
    assert writer.failed == 3
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 3  # none is retried
    update, end, start = (r.getMessage() for r in caplog.records)
    assert "update of ['call_sid']" in update
    assert "not found" in update
    assert "call end" in end
    assert "not found" in end
    assert "call start" in start
    assert "conflicts" in start
    assert twice in start
    await writer.close()


async def test_flush_waits_for_what_was_submitted(spy: SpyStore) -> None:
    writer = JournalWriter(spy)
    await writer.flush()  # nothing submitted: returns at once, even before start
    call_id = new_call_id()
    _start(writer, call_id)
    with pytest.raises(RuntimeError, match="start"):
        await writer.flush()
    await writer.start()
    await writer.start()  # idempotent
    await writer.flush()
    assert await spy.get_call(call_id) is not None

    spy.gate = asyncio.Event()
    writer.record(call_id, _turn(1))
    flushing = asyncio.create_task(writer.flush())
    await asyncio.sleep(0.05)
    assert not flushing.done()
    assert writer.pending == 1
    spy.gate.set()
    await asyncio.wait_for(flushing, 5)
    assert writer.pending == 0
    await writer.close()


async def test_a_full_queue_drops_and_counts(
    spy: SpyStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = JournalWriter(spy, max_queue=3)
    call_id = new_call_id()
    _start(writer, call_id)
    with caplog.at_level(logging.ERROR, logger="bridge.journal.writer"):
        for n in range(4):
            writer.record(call_id, _turn(n))
    assert writer.dropped == 2
    assert writer.pending == 3
    assert len(caplog.records) == 2
    assert all(call_id in r.getMessage() and "full" in r.getMessage() for r in caplog.records)
    assert SECRET not in caplog.text
    await writer.start()
    await writer.flush()
    detail = await spy.get_call(call_id)
    assert detail is not None
    assert detail.transcript == (_turn(0), _turn(1))
    await writer.close()


async def test_close_flushes_then_drops_later_submits(
    spy: SpyStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = JournalWriter(spy)
    call_id = new_call_id()
    await writer.start()
    _start(writer, call_id)
    writer.call_updated(call_id, call_sid="CA1")
    await writer.close()
    detail = await spy.get_call(call_id)
    assert detail is not None
    assert detail.call.call_sid == "CA1"
    with caplog.at_level(logging.ERROR, logger="bridge.journal.writer"):
        writer.record(call_id, _turn(1))
    assert writer.dropped == 1
    assert "closed" in caplog.text
    with pytest.raises(RuntimeError, match="closed"):
        await writer.start()


async def test_close_can_be_bounded_by_a_timeout(
    spy: SpyStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = JournalWriter(spy)
    call_id = new_call_id()
    _start(writer, call_id)
    writer.record(call_id, _turn(1))
    spy.gate = asyncio.Event()  # the store hangs
    await writer.start()
    with (
        caplog.at_level(logging.ERROR, logger="bridge.journal.writer"),
        pytest.raises(TimeoutError),
    ):
        async with asyncio.timeout(0.1):
            await writer.close()
    # the call start was written, but it shares the unfinished batch: counted by batch
    assert "2 writes not confirmed" in caplog.text


async def test_close_before_start_reports_lost_writes(
    spy: SpyStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = JournalWriter(spy)
    _start(writer, new_call_id())
    with caplog.at_level(logging.ERROR, logger="bridge.journal.writer"):
        await writer.close()
    assert "1 writes not confirmed" in caplog.text


async def test_programming_errors_raise_at_submit(spy: SpyStore) -> None:
    writer = JournalWriter(spy)
    call_id = new_call_id()
    with pytest.raises(TypeError, match="carrier"):
        writer.call_updated(call_id, carrier="x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="timezone-aware"):
        writer.call_started(call_id, carrier="x", started_at=NAIVE)
    with pytest.raises(ValueError, match="timezone-aware"):
        writer.call_finished(call_id, status="x", end_reason=None, ended_at=NAIVE)
    assert writer.pending == 0


async def test_tool_calls_and_updates_go_through(sqlite_journal: JournalStore) -> None:
    writer = JournalWriter(sqlite_journal)
    await writer.start()
    call_id = new_call_id()
    _start(writer, call_id)
    tool = JournalToolCall("tc", "weather", {"city": "Oslo"}, "sunny", True, 1.5, 80.0)
    writer.record(call_id, tool)
    writer.call_updated(call_id, stream_sid="MZ1", context={"a": 1})
    writer.record(call_id, JournalTurn("agent", "It is sunny.", 2.0))
    await writer.close()
    detail = await sqlite_journal.get_call(call_id)
    assert detail is not None
    assert detail.tool_calls == (tool,)
    assert detail.call.stream_sid == "MZ1"
    assert detail.call.context == {"a": 1}
    assert detail.transcript == (JournalTurn("agent", "It is sunny.", 2.0),)


async def test_a_batch_of_many_calls_is_one_transaction(spy: SpyStore) -> None:
    writer = JournalWriter(spy, linger_s=0.05)
    calls = [new_call_id() for _ in range(30)]
    await writer.start()
    for call_id in calls:
        _start(writer, call_id)
        writer.record(call_id, _turn(1))
        writer.call_finished(call_id, status="completed", end_reason="done", ended_at=T0)
    # Every submission is queued before the writer runs: however soon it writes (flush ends the
    # linger; a loaded machine may not have written after any fixed sleep), it is one batch.
    await writer.flush()
    assert spy.transactions == 1
    for call_id in calls:
        detail = await spy.get_call(call_id)
        assert detail is not None
        assert detail.transcript == (_turn(1),)
        assert detail.call.status == "completed"
    await writer.close()


async def test_one_bad_write_does_not_sink_its_batch(
    spy: SpyStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = JournalWriter(spy, retry_delays=(0, 0), linger_s=0.05)
    good, bad = new_call_id(), new_call_id()
    _start(writer, good)
    writer.record(good, _turn(1))
    writer.record(bad, _turn(2))  # never started: cannot be written
    await writer.start()
    with caplog.at_level(logging.WARNING, logger="bridge.journal.writer"):
        await writer.flush()
    detail = await spy.get_call(good)
    assert detail is not None
    assert detail.transcript == (_turn(1),)
    assert writer.failed == 1
    warning, error = caplog.records
    assert warning.levelno == logging.WARNING
    assert "one by one" in warning.getMessage()
    assert error.levelno == logging.ERROR
    assert bad in error.getMessage()
    assert SECRET not in caplog.text
    await writer.close()


async def test_flush_ends_the_linger_at_once(spy: SpyStore) -> None:
    writer = JournalWriter(spy, linger_s=30)
    call_id = new_call_id()
    await writer.start()
    _start(writer, call_id)
    async with asyncio.timeout(2):
        await writer.flush()
    assert await spy.get_call(call_id) is not None
    await writer.close()
