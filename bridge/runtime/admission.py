"""Admission control: a worker refuses calls beyond its cap instead of degrading all of them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from bridge.runtime.services import Services

log = logging.getLogger(__name__)


@contextlib.contextmanager
def admit(services: Services, call_id: str, carrier: str = "twilio") -> Iterator[bool]:
    """Yield True and count the call as live, or journal it as rejected and yield False."""
    if len(services.live_calls) >= services.settings.max_calls:
        log.warning("call %s: rejected: capacity (%d live)", call_id, len(services.live_calls))
        now = datetime.now(UTC)
        services.journal.call_started(call_id, carrier=carrier, started_at=now)
        services.journal.call_finished(
            call_id, status="rejected", end_reason="rejected: capacity", ended_at=now
        )
        yield False
        return
    services.live_calls.add(call_id)
    try:
        yield True
    finally:
        services.live_calls.discard(call_id)
