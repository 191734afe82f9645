"""The background workers a server runs beside its calls: the webhook deliverer and the
post-call runner.

They live as long as the app: :func:`run_workers` is the lifespan of the webhooks router
(:mod:`bridge.api.webhooks`), which FastAPI nests inside the app's own lifespan — it starts once
the journal, its writer and the shared HTTP client are up, and stops before they close. Both
work from rows in the journal, so what one worker process leaves undone another one, or the
next start, picks up.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI

from bridge.postcall.runner import PostcallRunner
from bridge.runtime.services import Services
from bridge.webhooks.deliverer import Deliverer
from bridge.webhooks.retry import RetryPolicy

__all__ = ["Background", "run_workers"]


@dataclass(slots=True)
class Background:
    deliverer: Deliverer
    postcall: PostcallRunner

    async def close(self) -> None:
        """Stop both; work in flight is given back to the journal for the next start."""
        await self.postcall.close()
        await self.deliverer.close()


@contextlib.asynccontextmanager
async def run_workers(app: FastAPI) -> AsyncIterator[None]:
    """Start the workers (``app.state.background``) for the app's life."""
    services: Services = app.state.services
    settings = services.settings
    outbox = services.journal.outbox
    if outbox is None:
        raise RuntimeError("the journal writer has no outbox")
    policy = RetryPolicy(
        max_attempts=settings.webhook_max_attempts,
        base_s=settings.webhook_backoff_s,
        cap_s=settings.webhook_backoff_max_s,
        timeout_s=settings.webhook_timeout_s,
    )
    deliverer = Deliverer(
        outbox, services.tools.client, app.state.secrets, policy, poll_s=settings.webhook_poll_s
    )
    postcall = PostcallRunner(app.state.journal, outbox, services.agents, settings)
    background = app.state.background = Background(deliverer, postcall)
    await deliverer.start()
    await postcall.start()
    try:
        yield
    finally:
        await background.close()
