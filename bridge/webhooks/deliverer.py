"""The webhook deliverer: claims due outbox rows and POSTs them, signed, to their receivers.

One background task per worker process (started and stopped with the app). It claims up to
``concurrency`` rows at a time (:meth:`bridge.journal.outbox.Outbox.claim`: leased, oldest
first, one row at a time per call and subscription), sends each in a task of its own, and
settles the outcome:

* a 2xx answer → ``delivered``;
* anything else — another status (redirects are not followed), a timeout, a refused connection,
  a secret that cannot be decrypted — → pending again after the policy's backoff
  (:mod:`.retry`), or ``dead`` once its attempts are used up. The status and error of the last
  attempt are kept for ``GET /v1/webhooks/{id}/deliveries``.

It wakes when this worker's journal writer or post-call step commits new rows, when one of its
own deliveries finishes (the call's next event may be due), when a backoff runs out, and every
``poll_s`` (rows of other workers, leases run out). Stopping cuts short the attempts waiting on
receivers (never a database write: a cancelled SQLite write can keep its lock) and gives back
every row still leased, due at once for the next start. The audio path never waits for any of
it: the writer only inserts rows in the transactions it makes anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bridge.journal.outbox import Claimed, Outbox
from bridge.journal.store import JournalError
from bridge.journal.webhook_models import DEAD, DELIVERED, PENDING, WebhookSubscription
from bridge.secrets import SecretBox, SecretKeyError
from bridge.webhooks.payload import event_body, event_headers
from bridge.webhooks.retry import RetryPolicy

__all__ = ["Deliverer"]

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 300


class Deliverer:
    """Delivers the outbox in the background (:meth:`start` / :meth:`close`)."""

    def __init__(
        self,
        outbox: Outbox,
        client: httpx.AsyncClient,
        box: SecretBox,
        policy: RetryPolicy,
        *,
        poll_s: float = 2.0,
        concurrency: int = 8,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._box = box
        self.policy = policy
        self._poll_s = poll_s
        self._concurrency = concurrency
        self._clock = clock
        self._draw = draw
        self.owner = f"webhooks-{os.getpid()}-{secrets.token_hex(6)}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[asyncio.Task[None], Claimed] = {}
        self._sending: set[asyncio.Task[Any]] = set()
        """Deliveries waiting on their receiver: the only ones stopping may cancel (a database
        operation is never cut short: a cancelled SQLite write can keep its lock)."""
        self._stopping = False
        self._timers: set[asyncio.TimerHandle] = set()
        outbox.listen("events", self.wake)

    def wake(self) -> None:
        self._wake.set()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="webhook-deliverer")

    async def close(self) -> None:
        """Stop: claim no more, cut the attempts waiting on receivers short, let the ones
        writing their outcome finish, and give back every row still leased."""
        self._stopping = True
        self._wake.set()
        for timer in self._timers:
            timer.cancel()
        task, self._task = self._task, None
        if task is not None:
            await task
        for job in list(self._sending):
            job.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        try:  # every row still leased to us: in flight, or claimed by a claim cut short
            await self._outbox.release(self.owner)
        except JournalError as exc:
            log.warning("webhook leases not given back (they run out): %s", exc.message)

    async def _run(self) -> None:
        while not self._stopping:
            room = self._concurrency - len(self._inflight)
            claimed: list[Claimed] = []
            if room > 0:
                try:
                    claimed = await self._outbox.claim(
                        self.owner, now=self._now(), limit=room, lease_s=self.policy.lease_s
                    )
                    subscriptions = await self._outbox.subscriptions(
                        {row.subscription_id for row in claimed}
                    )
                except JournalError as exc:
                    log.warning("webhook deliveries not claimed: %s", exc.message)
                    with contextlib.suppress(JournalError):  # else their leases run out
                        await self._outbox.release(self.owner, [row.id for row in claimed])
                    claimed, subscriptions = [], {}
                for row in claimed:
                    job = asyncio.create_task(
                        self._deliver(row, subscriptions.get(row.subscription_id)),
                        name=f"webhook-{row.id}",
                    )
                    self._inflight[job] = row
                    job.add_done_callback(self._finished)
            if claimed and len(claimed) == room:
                continue  # more may be due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
            self._wake.clear()

    def _finished(self, job: asyncio.Task[None]) -> None:
        self._inflight.pop(job, None)
        if not job.cancelled() and job.exception() is not None:
            log.error("webhook delivery crashed", exc_info=job.exception())
        self._wake.set()

    async def _deliver(self, row: Claimed, subscription: WebhookSubscription | None) -> None:
        if subscription is None or self._stopping:
            return  # deleted meanwhile (its rows went with it), or stopping (given back)
        job = asyncio.current_task()
        assert job is not None
        self._sending.add(job)
        try:
            status, error = await self._attempt(row, subscription)
        finally:
            self._sending.discard(job)
        await self._settle(row, status, error)

    async def _attempt(
        self, row: Claimed, subscription: WebhookSubscription
    ) -> tuple[int | None, str | None]:
        """One POST: the receiver's status and, unless it is a 2xx, what went wrong."""
        status: int | None = None
        error: str | None = None
        try:
            secret = self._box.open(subscription.sealed_secret).decode("utf-8")
            body = event_body(row)
            headers = event_headers(secret, int(self._clock()), body, row)
            async with self._client.stream(
                "POST",
                subscription.url,
                content=body,
                headers=headers,
                timeout=self.policy.timeout_s,
                follow_redirects=False,
            ) as response:
                status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except SecretKeyError as exc:
            error = exc.message
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS] or type(exc).__name__
        return status, error

    async def _settle(self, row: Claimed, status: int | None, error: str | None) -> None:
        now = self._now()
        retry_at: datetime | None = None
        if error is None:
            state = DELIVERED
        elif self.policy.gives_up(row.attempts):
            state = DEAD
            log.warning(
                "webhook event %s (call %s) to subscription %s dead after %d attempts: %s",
                row.event_id,
                row.call_id,
                row.subscription_id,
                row.attempts,
                error,
                extra={"call_id": row.call_id},
            )
        else:
            state = PENDING
            delay = self.policy.delay_s(row.attempts, self._draw())
            retry_at = now + timedelta(seconds=delay)
            timer = asyncio.get_running_loop().call_later(delay, self._retry_due)
            self._timers.add(timer)
        try:
            await self._outbox.settle(
                row,
                self.owner,
                state=state,
                now=now,
                next_attempt_at=retry_at,
                status=status,
                error=error,
            )
        except JournalError as exc:  # the lease runs out and the row is tried again
            log.warning("webhook event %s outcome not written: %s", row.event_id, exc.message)

    def _retry_due(self) -> None:
        now = asyncio.get_running_loop().time()
        self._timers = {timer for timer in self._timers if timer.when() > now}
        self._wake.set()
