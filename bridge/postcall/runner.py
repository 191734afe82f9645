"""The post-call worker: summary and collected fields of each ended call, then ``call.ended``.

The journal writer inserts a ``postcall_jobs`` row in the transaction that ends a call, so a
job survives a restart. :class:`PostcallRunner` claims due jobs (leased, like the webhook
outbox: :mod:`bridge.journal.outbox`), reads the call, and when its agent has ``summary`` on:

* asks the summary model (:mod:`.llm`) for the summary and the ``collect_fields``;
* falls back to :mod:`.offline` when no model is configured, the call has no transcript, the
  model fails (down, timeout, error status) or its answer does not fit the schema.

Then, in **one transaction**: the call's ``summary`` and ``collected`` columns, a journal
event ``postcall`` (``{"method": "llm" | "offline", "model"?, "reason"?}`` — ``reason`` says
why the offline fallback ran), the job marked done, and ``call.ended`` staged for the webhook
subscriptions. A call whose agent has no summary gets only ``call.ended`` (summary and
collected ``null``). A job that fails on the database is retried with backoff; the call's
record is never touched by a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from bridge.agents.loader import AgentRegistry
from bridge.agents.model import Agent
from bridge.config import Settings
from bridge.errors import ConfigError, EngineUnavailable
from bridge.journal.models import Call, CallDetail
from bridge.journal.outbox import Outbox
from bridge.journal.store import JournalError, JournalStore
from bridge.postcall import llm
from bridge.postcall.fields import AnswerInvalid
from bridge.postcall.offline import offline_answer
from bridge.session.actions import JournalEvent

__all__ = ["Outcome", "PostcallRunner"]

log = logging.getLogger(__name__)

LEASE_S = 180.0
"""A job's lease: the model's time limit, its one retry, and room to spare."""
RETRY_MAX_S = 300.0
CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the post-call step made of a call (``method`` ``None``: no summary wanted)."""

    summary: str | None
    collected: Mapping[str, Any] | None
    method: str | None = None
    model: str | None = None
    reason: str | None = None

    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = {"method": self.method}
        if self.model is not None:
            data["model"] = self.model
        if self.reason is not None:
            data["reason"] = self.reason
        return data


class PostcallRunner:
    """Claims and runs post-call jobs in the background (:meth:`start` / :meth:`close`)."""

    def __init__(
        self,
        store: JournalStore,
        outbox: Outbox,
        agents: AgentRegistry,
        settings: Settings,
        *,
        open_model: llm.ModelFactory = llm.open_model,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._agents = agents
        self._settings = settings
        self._open_model = open_model
        self._clock = clock
        self.owner = f"postcall-{os.getpid()}-{secrets.token_hex(6)}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: dict[asyncio.Task[None], str] = {}
        self._asking: set[asyncio.Task[Any]] = set()
        """Jobs waiting on the language model: the only ones stopping may cancel (a database
        operation is never cut short: a cancelled SQLite write can keep its lock)."""
        self._stopping = False
        outbox.listen("jobs", self._wake.set)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="postcall")

    async def close(self) -> None:
        """Stop: claim no more, cut short the jobs waiting on the model, let the others finish,
        and give back every job still leased (due again at the next start)."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        for job in list(self._asking):
            job.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        try:  # in flight, or claimed by a claim cut short
            await self._outbox.release_jobs(self.owner)
        except JournalError as exc:
            log.warning("post-call leases not given back (they run out): %s", exc.message)

    async def _run(self) -> None:
        while not self._stopping:
            room = CONCURRENCY - len(self._running)
            claimed: list[tuple[str, int]] = []
            if room > 0:
                try:
                    claimed = await self._outbox.claim_jobs(
                        self.owner, now=self._now(), limit=room, lease_s=LEASE_S
                    )
                except JournalError as exc:
                    log.warning("post-call jobs not claimed: %s", exc.message)
            for call_id, attempts in claimed:
                job = asyncio.create_task(self._job(call_id, attempts), name=f"postcall-{call_id}")
                self._running[job] = call_id
                job.add_done_callback(self._done)
            if claimed and len(claimed) == room:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.webhook_poll_s)
            self._wake.clear()

    def _done(self, job: asyncio.Task[None]) -> None:
        self._running.pop(job, None)
        self._wake.set()

    async def _job(self, call_id: str, attempts: int) -> None:
        if self._stopping:
            return  # given back at close
        try:
            await self.run_one(call_id)
        except Exception as exc:
            delay = min(RETRY_MAX_S, 2.0**attempts)
            reason = exc.message if isinstance(exc, JournalError) else type(exc).__name__
            log.warning(
                "call %s: post-call step failed (%s), retry in %.0f s",
                call_id,
                reason,
                delay,
                extra={"call_id": call_id},
            )
            with contextlib.suppress(JournalError):
                await self._outbox.retry_job(
                    call_id, self.owner, self._now() + timedelta(seconds=delay)
                )

    async def run_one(self, call_id: str) -> Outcome:
        """Run the step for one claimed job (the lease must be this runner's)."""
        detail = await self._store.get_call(call_id)
        agent = self._agent(detail)
        outcome = (
            Outcome(None, None)
            if detail is None or agent is None or not agent.summary
            else await self.summarize(detail, agent)
        )
        now = self._now()
        async with self._store.transaction("postcall", call_id) as tx:
            if not await self._outbox.finish_job(tx, call_id, self.owner, now):
                raise _LeaseLost("the job's lease ran out")
            if detail is None:
                return outcome
            call = detail.call
            if outcome.method is not None:
                await tx.session.execute(
                    update(Call)
                    .where(Call.id == call_id)
                    .values(
                        {
                            Call.summary_text: outcome.summary,
                            Call.collected: dict(outcome.collected or {}),
                        }
                    )
                    .execution_options(synchronize_session=False)
                )
                at = call.duration_secs or 0.0
                await tx.add_records(call_id, [JournalEvent("postcall", at, outcome.event())])
            ended = {
                "status": call.status,
                "end_reason": call.end_reason,
                "started_at": call.started_at.isoformat(),
                "ended_at": call.ended_at.isoformat() if call.ended_at else None,
                "duration_secs": call.duration_secs,
                "summary": outcome.summary,
                "collected": None if outcome.collected is None else dict(outcome.collected),
            }
            await self._outbox.stage_ended(tx, call_id, ended, now)
        self._outbox.committed()
        return outcome

    def _agent(self, detail: CallDetail | None) -> Agent | None:
        if detail is None or detail.call.agent is None:
            return None
        try:
            return self._agents.get(detail.call.agent, detail.call.org_id)
        except ConfigError:
            return None  # an agent removed since, or one that never existed

    async def summarize(self, detail: CallDetail, agent: Agent) -> Outcome:
        """The model's answer, or the offline fallback with the reason (never raises)."""
        fields = agent.collect_fields
        config = llm.summary_model(agent, self._settings)
        call_id = detail.call.id
        if config is None:
            reason = "no language model configured"
        elif not detail.transcript:
            reason = "no transcript"
        else:
            model = self._open_model(config)
            job = asyncio.current_task()
            try:
                if job is not None:
                    self._asking.add(job)
                summary, collected = await llm.ask(model, detail, fields)
                return Outcome(summary, collected, "llm", config.model)
            except EngineUnavailable as exc:
                reason = exc.message
            except AnswerInvalid as exc:
                reason = f"language model answer rejected: {exc}"
            except Exception as exc:  # a bug must not cost the call its summary
                log.exception("call %s: summary crashed", call_id, extra={"call_id": call_id})
                reason = f"summary crashed: {type(exc).__name__}"
            finally:
                self._asking.discard(job)
                await model.close()
            log.warning(
                "call %s: summary by the offline fallback: %s",
                call_id,
                reason,
                extra={"call_id": call_id},
            )
        summary, collected = offline_answer(llm.call_info(detail), detail.transcript, fields)
        model_name = None if config is None else config.model
        return Outcome(summary, collected, "offline", model_name, reason)


class _LeaseLost(Exception):
    """Another worker took the job over (this one was too slow): its results are dropped."""
