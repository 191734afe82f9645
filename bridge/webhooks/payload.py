"""What a webhook receiver gets: one JSON event, signed like the tool webhooks.

Body (UTF-8 JSON; the same bytes on every attempt)::

    {"id": "01J…", "type": "transcript.message", "created_at": "2025-03-01T09:30:00.123000+00:00",
     "org": "acme", "call_id": "01J…", "agent": "front", "data": {…}}

Headers: ``Content-Type: application/json``, ``User-Agent: callbridge/<version>``,
``X-Callbridge-Event: <type>``, ``X-Callbridge-Event-Id: <id>`` (the same for every attempt
and every subscription: dedupe on it), ``X-Callbridge-Delivery-Attempt: <n>``, and the
signature pair of :mod:`bridge.tools.signing` — ``X-Callbridge-Timestamp`` (the attempt's
time) and ``X-Callbridge-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` —
under the subscription's own secret.

Pure: no I/O, and the time is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import orjson

from bridge import __version__
from bridge.tools.signing import signed_headers

__all__ = ["EVENT_HEADER", "EVENT_ID_HEADER", "event_body", "event_headers"]

EVENT_HEADER = "X-Callbridge-Event"
EVENT_ID_HEADER = "X-Callbridge-Event-Id"
ATTEMPT_HEADER = "X-Callbridge-Delivery-Attempt"
USER_AGENT = f"callbridge/{__version__}"


class Event(Protocol):
    """An outbox row being delivered (:class:`bridge.journal.outbox.Claimed`)."""

    @property
    def event_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def org_id(self) -> str: ...
    @property
    def call_id(self) -> str: ...
    @property
    def agent(self) -> str | None: ...
    @property
    def data(self) -> Mapping[str, Any]: ...
    @property
    def attempts(self) -> int: ...


def event_body(event: Event) -> bytes:
    document: dict[str, Any] = {
        "id": event.event_id,
        "type": event.type,
        "created_at": event.created_at.isoformat(),
        "org": event.org_id,
        "call_id": event.call_id,
        "agent": event.agent,
        "data": dict(event.data),
    }
    return orjson.dumps(document)


def event_headers(secret: str, timestamp: int, body: bytes, event: Event) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event.type,
        EVENT_ID_HEADER: event.event_id,
        ATTEMPT_HEADER: str(event.attempts),
        **signed_headers(secret, timestamp, body),
    }
