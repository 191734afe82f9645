"""The journal writer: keeps database writes off the audio hot path.

The call runtime *submits* (plain, synchronous calls that only put on a bounded queue and never
wait); one background task drains the queue in batches and writes through a
:class:`~bridge.journal.store.JournalStore`.

The task lingers briefly (``linger_s``, 100 ms) after the first submission so that a batch
gathers the records of many calls, then writes the whole batch in **one transaction** (group
commit: at 150 live calls the per-transaction cost was the journal's main CPU cost). Within a
batch, each call's operations run in the order they were submitted, and consecutive records of
one call become one ``add_records``. If the batch transaction fails, its operations are written
one by one, so one bad operation cannot sink the others. :meth:`JournalWriter.flush` ends the
linger at once.

With an :class:`~bridge.journal.outbox.Outbox`, every transaction also stages what its rows
mean for webhook subscribers (``call.started``, ``transcript.message``, ``tool.called``) and a
post-call job for each call that ended: they commit with the rows or not at all.

A failed write is retried with backoff when it may help (``JournalError.retryable`` or an
unexpected exception), then logged with the call id and dropped; the writer itself never stops. A
full queue drops the submission, logs it and counts it in :attr:`JournalWriter.dropped`. Log lines
carry the call id (in the text and as ``extra["call_id"]``), never transcript text.

Submit only from the event loop's thread: ``asyncio.Queue`` is not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Unpack

from bridge.journal.feed import JournalFeed
from bridge.journal.models import DEFAULT_ORG, UPDATABLE_FIELDS, CallUpdate
from bridge.journal.outbox import CallFact, Outbox
from bridge.journal.store import JournalError, JournalStore, JournalTx
from bridge.session.actions import JournalAction

__all__ = ["JournalWriter"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Started:
    call_id: str
    fields: Mapping[str, Any]
    existing: bool = False


@dataclass(frozen=True, slots=True)
class _Updated:
    call_id: str
    fields: CallUpdate


@dataclass(frozen=True, slots=True)
class _Recorded:
    call_id: str
    records: list[JournalAction]


@dataclass(frozen=True, slots=True)
class _Finished:
    call_id: str
    status: str
    end_reason: str | None
    ended_at: datetime


_Op = _Started | _Updated | _Recorded | _Finished


class JournalWriter:
    """Queue journal writes from the hot path; write them from one background task."""

    def __init__(
        self,
        store: JournalStore,
        *,
        max_queue: int = 100_000,
        max_batch: int = 1_000,
        retry_delays: Sequence[float] = (0.2, 1.0),
        linger_s: float = 0.1,
        group_commit: bool = True,
        feed: JournalFeed | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self._store = store
        self._outbox = outbox
        """Webhook events and post-call jobs, staged in the same transactions as their rows."""
        self.feed = feed or JournalFeed()
        """Every submission, as it is taken, for live subscribers (:mod:`bridge.journal.feed`)."""
        self._linger_s = linger_s
        self._group_commit = group_commit
        self._urgent = asyncio.Event()
        self._queue: asyncio.Queue[_Op] = asyncio.Queue(maxsize=max_queue)
        self._max_batch = max_batch
        self._retry_delays = tuple(retry_delays)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._submitted = 0  # operations accepted onto the queue
        self._completed = 0  # ... of which written, or given up on
        self._progress = asyncio.Condition()
        self.dropped = 0
        """Operations dropped because the queue was full or the writer closed."""
        self.failed = 0
        """Operations given up on after their retries."""

    # --- the hot path: synchronous, never waits ------------------------------------------------

    def call_started(
        self,
        call_id: str,
        *,
        carrier: str,
        started_at: datetime,
        existing: bool = False,
        **fields: Unpack[CallUpdate],
    ) -> None:
        """Submit :meth:`JournalStore.create_call` (same arguments). ``existing``: the record was
        opened before the media arrived (a carrier webhook did): update it instead."""
        _require_aware(started_at, "started_at")
        unknown = set(fields) - UPDATABLE_FIELDS
        if unknown:
            raise TypeError(f"call_started does not know {sorted(unknown)}")
        values: dict[str, Any] = {"carrier": carrier, "started_at": started_at, **fields}
        values["context"] = dict(fields.get("context") or {})  # the caller may reuse its dict
        if self._submit(_Started(call_id, values, existing)):
            started = {
                "carrier": carrier,
                "agent": fields.get("agent"),
                "org_id": fields.get("org_id") or DEFAULT_ORG,  # the table's default too
            }
            self.feed.call_started(call_id, started)

    def call_updated(self, call_id: str, **fields: Unpack[CallUpdate]) -> None:
        """Submit :meth:`JournalStore.update_call`. Unknown field names raise ``TypeError`` now."""
        unknown = set(fields) - UPDATABLE_FIELDS
        if unknown:
            raise TypeError(f"call_updated cannot change {sorted(unknown)}")
        if "context" in fields:
            fields["context"] = dict(fields["context"] or {})  # the caller may reuse its dict
        if self._submit(_Updated(call_id, fields)):
            self.feed.call_updated(call_id, dict(fields))

    def record(self, call_id: str, action: JournalAction) -> None:
        """Submit one transcript turn, event or tool call of the call."""
        if self._submit(_Recorded(call_id, [action])):
            self.feed.record(call_id, action)

    def call_finished(
        self, call_id: str, *, status: str, end_reason: str | None, ended_at: datetime
    ) -> None:
        """Submit :meth:`JournalStore.finish_call`."""
        _require_aware(ended_at, "ended_at")
        if self._submit(_Finished(call_id, status, end_reason, ended_at)):
            self.feed.call_finished(call_id, status, end_reason)

    def _submit(self, op: _Op) -> bool:
        """Queue ``op``; False if it was dropped (then live subscribers are not told either)."""
        if self._closed:
            self._drop(op, "the writer is closed")
            return False
        try:
            self._queue.put_nowait(op)
        except asyncio.QueueFull:
            self._drop(op, "the queue is full")
            return False
        self._submitted += 1
        return True

    def _drop(self, op: _Op, why: str) -> None:
        self.dropped += 1
        logger.error(
            "call %s: journal %s dropped, %s (%d dropped so far)",
            op.call_id,
            _describe(op),
            why,
            self.dropped,
            extra={"call_id": op.call_id},
        )

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def outbox(self) -> Outbox | None:
        """Where this writer stages webhook events and post-call jobs (``None``: nowhere)."""
        return self._outbox

    @property
    def pending(self) -> int:
        """Operations submitted and not yet written or given up on (counted by whole batches)."""
        return self._submitted - self._completed

    async def start(self) -> None:
        """Start the background task (submits before this wait on the queue)."""
        if self._closed:
            raise RuntimeError("the journal writer is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="journal-writer")

    async def flush(self) -> None:
        """Wait until every operation submitted so far is written or given up on."""
        target = self._submitted
        if self._completed >= target:
            return
        if self._task is None or self._task.done():
            raise RuntimeError("the journal writer is not running; call start() first")
        self._urgent.set()
        async with self._progress:
            await self._progress.wait_for(lambda: self._completed >= target)

    async def close(self) -> None:
        """Flush, then stop; later submits are dropped.

        To bound shutdown, wrap in ``asyncio.timeout()``: when cancelled, the background task is
        stopped all the same and the unwritten operations are counted in the log.
        """
        self._closed = True
        task, self._task = self._task, None
        try:
            if task is not None:
                await self._flush_until(task)
        finally:
            if self.pending:
                logger.error(
                    "journal writer stopped with %d writes not confirmed written", self.pending
                )
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _flush_until(self, task: asyncio.Task[None]) -> None:
        target = self._submitted
        self._urgent.set()
        async with self._progress:
            await self._progress.wait_for(lambda: self._completed >= target or task.done())

    # --- the background task -----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._linger_s > 0 and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._linger_s)
            self._urgent.clear()
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            steps = _plan(batch)
            if not await self._write_together(steps):
                for step in steps:
                    await self._write(step)
            async with self._progress:
                self._completed += len(batch)
                self._progress.notify_all()

    async def _write_together(self, steps: list[_Op]) -> bool:
        """Write every step in one transaction; False (nothing written) if any step fails."""
        if not self._group_commit or len(steps) < 2:
            return False
        try:
            async with self._store.transaction() as tx:
                for step in steps:
                    await _apply(tx, step)
                if self._outbox is not None:
                    await self._outbox.stage(tx, _facts(steps), datetime.now(UTC))
        except Exception as exc:
            logger.warning(
                "journal batch of %d writes failed (%s): writing them one by one",
                len(steps),
                _reason(exc),
            )
            return False
        if self._outbox is not None:
            self._outbox.committed()
        return True

    async def _write(self, op: _Op) -> None:
        for attempt in range(len(self._retry_delays) + 1):
            try:
                if self._outbox is None:
                    await _apply(self._store, op)
                else:
                    async with self._store.transaction(_operation(op), op.call_id) as tx:
                        await _apply(tx, op)
                        await self._outbox.stage(tx, _facts([op]), datetime.now(UTC))
                    self._outbox.committed()
            except Exception as exc:
                retryable = not isinstance(exc, JournalError) or exc.retryable
                if retryable and attempt < len(self._retry_delays):
                    delay = self._retry_delays[attempt]
                    logger.warning(
                        "call %s: journal %s failed (%s), retry in %ss",
                        op.call_id,
                        _describe(op),
                        _reason(exc),
                        delay,
                        extra={"call_id": op.call_id},
                    )
                    await asyncio.sleep(delay)
                    continue
                self.failed += 1
                logger.error(
                    "call %s: journal %s lost after %d attempt(s): %s",
                    op.call_id,
                    _describe(op),
                    attempt + 1,
                    _reason(exc),
                    extra={"call_id": op.call_id},
                )
            return


async def _apply(target: JournalStore | JournalTx, op: _Op) -> None:
    match op:
        case _Started(existing=True):
            fields = {k: v for k, v in op.fields.items() if k not in ("carrier", "started_at")}
            await target.update_call(op.call_id, **{"status": "in-progress", **fields})
        case _Started():
            await target.create_call(op.call_id, **op.fields)
        case _Updated():
            await target.update_call(op.call_id, **op.fields)
        case _Recorded():
            await target.add_records(op.call_id, op.records)
        case _Finished():
            await target.finish_call(
                op.call_id, status=op.status, end_reason=op.end_reason, ended_at=op.ended_at
            )


def _facts(steps: list[_Op]) -> list[CallFact]:
    """What the outbox turns into webhook events and post-call jobs (a call record opened
    before its media arrived was already announced when it was opened)."""
    facts: list[CallFact] = []
    for step in steps:
        match step:
            case _Started(existing=False):
                facts.append(CallFact(step.call_id, "started", fields=step.fields))
            case _Recorded():
                facts.append(CallFact(step.call_id, "records", records=tuple(step.records)))
            case _Finished():
                facts.append(CallFact(step.call_id, "finished"))
    return facts


def _operation(op: _Op) -> str:
    """The store method's name for ``op`` (what its errors say failed)."""
    match op:
        case _Started(existing=False):
            return "create_call"
        case _Started() | _Updated():
            return "update_call"
        case _Recorded():
            return "add_records"
        case _Finished():
            return "finish_call"


def _plan(batch: list[_Op]) -> list[_Op]:
    """Per-call order kept; calls in order of first appearance; consecutive records merged."""
    by_call: dict[str, list[_Op]] = {}
    for op in batch:
        steps = by_call.setdefault(op.call_id, [])
        if not isinstance(op, _Recorded):
            steps.append(op)
        elif steps and isinstance(steps[-1], _Recorded):
            steps[-1].records.extend(op.records)
        else:
            steps.append(_Recorded(op.call_id, list(op.records)))  # a list of its own to extend
    return [step for steps in by_call.values() for step in steps]


def _require_aware(value: datetime, name: str) -> None:
    # Checked at submit time: a naive datetime is a bug to raise where it is made.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _describe(op: _Op) -> str:
    match op:
        case _Started():
            return "call start"
        case _Updated():
            return f"update of {sorted(op.fields)}"
        case _Recorded():
            return f"{len(op.records)} record(s)"
        case _Finished():
            return "call end"


def _reason(exc: Exception) -> str:
    # JournalError messages carry no row values. Any other exception is logged by type and the
    # line that raised it, without message or traceback text: those may quote a transcript.
    if isinstance(exc, JournalError):
        return str(exc)
    raised_at = traceback.extract_tb(exc.__traceback__)[-1]  # a caught exception has a frame
    return f"unexpected {type(exc).__name__} at {raised_at.filename}:{raised_at.lineno}"
