"""The pure parts of webhook delivery: the retry policy and the signed request."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bridge.errors import ConfigError
from bridge.journal.outbox import Claimed
from bridge.tools.signing import verify
from bridge.webhooks.payload import event_body, event_headers
from bridge.webhooks.retry import RetryPolicy

EVENT = Claimed(
    id=7,
    event_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
    subscription_id="01JSUB",
    org_id="acme",
    call_id="01JCALL",
    agent="front",
    type="transcript.message",
    data={"role": "user", "text": "héllo", "time_in_call_secs": 1.5, "interrupted": False},
    created_at=datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
    attempts=3,
)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=2.0, cap_s=10.0)
    assert [policy.delay_s(n, 0.999999) for n in range(1, 6)] == pytest.approx(
        [2, 4, 8, 10, 10], rel=1e-5
    )
    assert [policy.delay_s(n, 0.0) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert policy.delay_s(10_000, 0.5) == 7.5  # no overflow
    assert policy.delay_s(0, 2.0) == 2.0  # odd inputs are clamped
    assert [policy.gives_up(n) for n in (1, 4, 5, 6)] == [False, False, True, True]
    assert policy.lease_s > policy.timeout_s


@pytest.mark.parametrize(
    "changes",
    [{"max_attempts": 0}, {"base_s": 0}, {"base_s": 5, "cap_s": 1}, {"timeout_s": 0}],
)
def test_bad_policies_are_config_errors(changes: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**changes)  # type: ignore[arg-type]


def test_the_body_is_the_event() -> None:
    assert json.loads(event_body(EVENT)) == {
        "id": "01JABCDEFGHJKMNPQRSTVWXYZ0",
        "type": "transcript.message",
        "created_at": "2025-03-01T09:30:00+00:00",
        "org": "acme",
        "call_id": "01JCALL",
        "agent": "front",
        "data": {"role": "user", "text": "héllo", "time_in_call_secs": 1.5, "interrupted": False},
    }
    assert event_body(EVENT) == event_body(EVENT)  # the same bytes on every attempt


def test_headers_sign_the_body_like_tool_webhooks() -> None:
    body = event_body(EVENT)
    headers = event_headers("whsec_test", 1_740_821_400, body, EVENT)
    assert headers["X-Callbridge-Event"] == "transcript.message"
    assert headers["X-Callbridge-Event-Id"] == EVENT.event_id
    assert headers["X-Callbridge-Delivery-Attempt"] == "3"
    assert headers["X-Callbridge-Timestamp"] == "1740821400"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("callbridge/")
    signature = headers["X-Callbridge-Signature"]
    assert verify("whsec_test", "1740821400", signature, body, now=1_740_821_400 + 299)
    assert not verify("whsec_test", "1740821400", signature, body, now=1_740_821_400 + 301)
    assert not verify("whsec_other", "1740821400", signature, body, now=1_740_821_400)
    assert not verify("whsec_test", "1740821400", signature, body + b" ", now=1_740_821_400)
