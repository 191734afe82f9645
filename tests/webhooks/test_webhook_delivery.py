"""Event webhooks end to end: the served app, its outbox and deliverer, a real receiver.

A simulated Twilio call reaches the receiver as call.started, transcript.message(s) and
call.ended with the post-call summary, every request signed; a receiver that fails or is down
gets the same events, once each and in each call's order, after retries with backoff; events
queued when the app stops are delivered by the next app on the same journal; subscriptions see
only their agent's and their organization's calls.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from bridge.simulate.caller import TwilioCaller
from bridge.tools.signing import verify
from tests.e2e.lines import silence
from tests.speech import synthesize_ulaw8k
from tests.waiting import until
from tests.webhooks.harness import (
    Receiver,
    eventually,
    free_port,
    receiving,
    running,
    until_types,
)


async def test_a_simulated_call_is_delivered_signed(tmp_path: Path) -> None:
    receiver = Receiver()
    async with receiving(receiver) as url, running(tmp_path) as bridge:
        webhook = await bridge.subscribe(url)
        receiver.secret = webhook["secret"]
        caller = TwilioCaller(
            f"ws://{bridge.http.base_url.host}:{bridge.http.base_url.port}/twilio/media",
            custom_parameters={"agent": "front"},
        )
        async with caller.connect():
            await caller.wait_for_agent_audio(min_bytes=8000, timeout=20)
            await caller.wait_until_quiet(quiet_s=0.6, timeout=20)
            await caller.play(synthesize_ulaw8k("goodbye") + silence(900))
            await until(caller.closed_by_bridge.is_set, 30, "the agent to hang up")
        await until(lambda: any(b["type"] == "call.ended" for b in receiver.events()), 20)
        call_id = receiver.events()[0]["call_id"]
        call = await bridge.call(call_id)
        deliveries = await bridge.deliveries(webhook["id"])

    assert all(r.signed and r.status == 200 for r in receiver.requests), receiver.requests
    types = receiver.types(call_id)
    assert types[0] == "call.started" and types[-1] == "call.ended", types
    assert set(types[1:-1]) == {"transcript.message"}
    messages = [b["data"] for b in receiver.events(call_id) if b["type"] == "transcript.message"]
    assert messages == [
        {
            "role": t["role"],
            "text": t["text"],
            "time_in_call_secs": t["time_in_call_secs"],
            "interrupted": t["interrupted"],
        }
        for t in call["transcript"]
    ]
    assert messages[0]["text"] == "Hello, how can I help?" and messages[-1]["text"] == "Goodbye."
    started, ended = receiver.events(call_id)[0], receiver.events(call_id)[-1]
    assert (started["org"], started["agent"], started["data"]["carrier"]) == (
        "default",
        "front",
        "twilio",
    )
    assert ended["data"]["status"] == "completed"
    assert ended["data"]["end_reason"] == call["end_reason"]
    assert ended["data"]["summary"] == call["summary"] and call["summary"].startswith(
        "Inbound twilio call"
    )
    assert (
        ended["data"]["collected"]
        == call["collected"]
        == {
            "caller_name": None,
            "reminder": None,
        }
    )
    postcall = [e for e in call["events"] if e["kind"] == "postcall"]
    assert postcall == [
        {
            "kind": "postcall",
            "time_in_call_secs": call["duration_secs"],
            "data": {"method": "offline", "reason": "no language model configured"},
        }
    ]
    # receivers can dedupe and order: an id per event, headers that say what it is
    first = receiver.accepted[0]
    assert first.headers["x-callbridge-event-id"] == first.body["id"]
    assert first.headers["x-callbridge-event"] == "call.started"
    assert first.headers["x-callbridge-delivery-attempt"] == "1"
    assert first.headers["content-type"] == "application/json"
    assert len({b["id"] for b in receiver.events()}) == len(receiver.events())
    assert {d["state"] for d in deliveries} == {"delivered"}
    assert sorted(d["event_id"] for d in deliveries) == sorted(b["id"] for b in receiver.events())
    # the signature is over the exact body: a receiver that re-serializes would fail
    body = b'{"tampered": true}'
    assert not verify(
        receiver.secret,
        first.headers["x-callbridge-timestamp"],
        first.headers["x-callbridge-signature"],
        body,
        now=float(first.headers["x-callbridge-timestamp"]),
    )


async def test_an_outage_is_retried_with_backoff_and_nothing_is_lost(tmp_path: Path) -> None:
    receiver = Receiver(fail_first=7)  # the first 7 requests get a 500
    async with receiving(receiver) as url, running(tmp_path) as bridge:
        receiver.secret = (await bridge.subscribe(url))["secret"]
        calls = [bridge.fake_call(agent="sales", turns=3) for _ in range(3)]
        for call_id in calls:
            await until_types(receiver, call_id, 6)
        listed = await bridge.http.get("/v1/webhooks", headers=await bridge.key())
        deliveries = await bridge.deliveries(listed.json()["webhooks"][0]["id"])

    expected = ["call.started", "transcript.message", "transcript.message"]
    expected += ["transcript.message", "tool.called", "call.ended"]
    for call_id in calls:
        assert receiver.types(call_id) == expected  # exactly these, once each, in order
        texts = [b["data"]["text"] for b in receiver.events(call_id)[1:4]]
        assert texts == ["turn 0", "turn 1", "turn 2"]
    assert len(receiver.requests) == len(receiver.accepted) + 7
    retried = [d for d in deliveries if d["attempts"] > 1]
    assert retried and all(d["state"] == "delivered" for d in deliveries)
    assert all(d["last_status"] == 200 and d["last_error"] is None for d in deliveries)
    # backoff: each retry of an event waited at least half its nominal delay (0.05 s doubled)
    by_event: dict[str, list[float]] = {}
    for request in receiver.requests:
        by_event.setdefault(request.body["id"], []).append(request.at)
    for times in by_event.values():
        for attempt, (before, after) in enumerate(itertools.pairwise(times), 1):
            nominal = min(0.4, 0.05 * 2 ** (attempt - 1))
            assert after - before >= nominal * 0.5 - 0.005, (attempt, after - before)


async def test_a_receiver_that_was_down_gets_everything_when_it_is_back(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there yet: connections are refused
    async with running(tmp_path) as bridge:
        webhook = await bridge.subscribe(f"http://127.0.0.1:{port}/hook")
        calls = [bridge.fake_call(agent="sales", turns=2) for _ in range(2)]

        async def refused() -> bool:
            return any(d["attempts"] >= 2 for d in await bridge.deliveries(webhook["id"]))

        await eventually(refused, 10, "retries of refused deliveries")
        receiver = Receiver(secret=webhook["secret"])
        async with receiving(receiver, port):
            for call_id in calls:
                await until_types(receiver, call_id, 5)
        rows = await bridge.deliveries(webhook["id"])
    for call_id in calls:
        assert receiver.types(call_id) == [
            "call.started",
            "transcript.message",
            "transcript.message",
            "tool.called",
            "call.ended",
        ]
    assert len(receiver.requests) == len(receiver.accepted) == 10
    assert {d["state"] for d in rows} == {"delivered"}


async def test_events_queued_while_down_survive_a_restart(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there yet: connections are refused
    url = f"http://127.0.0.1:{port}/hook"
    async with running(tmp_path) as bridge:
        webhook = await bridge.subscribe(url)
        first = bridge.fake_call(agent="front", turns=2)
        await bridge.writer.flush()

        async def refused() -> bool:
            rows = await bridge.deliveries(webhook["id"])
            return any(d["attempts"] >= 2 for d in rows)

        await eventually(refused, 10, "retries of a refused delivery")
        rows = await bridge.deliveries(webhook["id"])
        assert any((d["last_error"] or "").startswith("ConnectError") for d in rows), rows
        assert {d["state"] for d in rows} == {"pending"}
        second = bridge.fake_call(agent="front", turns=1)  # ends as the app stops
    receiver = Receiver(secret=webhook["secret"])
    async with receiving(receiver, port), running(tmp_path) as again:
        await until_types(receiver, first, 5)
        await until_types(receiver, second, 4)
        rows = await again.deliveries(webhook["id"])
    expected = ["call.started", "transcript.message", "transcript.message", "tool.called"]
    assert receiver.types(first) == [*expected, "call.ended"]
    assert receiver.types(second) == [*expected[:2], "tool.called", "call.ended"]
    assert receiver.events(second)[-1]["data"]["summary"].startswith("Inbound twilio call")
    assert {d["state"] for d in rows} == {"delivered"}
    assert len(receiver.requests) == len(receiver.accepted)


async def test_agent_and_event_filters(tmp_path: Path) -> None:
    sales_only, ended_only = Receiver(), Receiver()
    async with (
        receiving(sales_only) as sales_url,
        receiving(ended_only) as ended_url,
        running(tmp_path) as bridge,
    ):
        sales_only.secret = (await bridge.subscribe(sales_url, agent="sales"))["secret"]
        ended_only.secret = (await bridge.subscribe(ended_url, events=["call.ended"]))["secret"]
        front = bridge.fake_call(agent="front")
        sales = bridge.fake_call(agent="sales")
        await until_types(ended_only, front, 1)
        await until_types(ended_only, sales, 1)
        await until_types(sales_only, sales, 5)
    assert sales_only.events(front) == []
    assert ended_only.types(front) == ended_only.types(sales) == ["call.ended"]
    # summaries only for agents that ask for them; call.ended either way
    assert ended_only.events(sales)[0]["data"]["summary"] is None
    assert ended_only.events(sales)[0]["data"]["collected"] is None
    assert ended_only.events(front)[0]["data"]["collected"] == {
        "caller_name": None,
        "reminder": None,
    }


async def test_an_organization_gets_only_its_own_events(tmp_path: Path) -> None:
    ours, theirs = Receiver(), Receiver()
    async with (
        receiving(ours) as our_url,
        receiving(theirs) as their_url,
        running(tmp_path) as bridge,
    ):
        ours.secret = (await bridge.subscribe(our_url))["secret"]
        theirs.secret = (await bridge.subscribe(their_url, org="acme"))["secret"]
        default_call = bridge.fake_call(agent="sales")
        acme_call = bridge.fake_call(org="acme", agent="acme-bot")
        await until_types(ours, default_call, 5)
        await until_types(theirs, acme_call, 5)
    assert {b["call_id"] for b in ours.events()} == {default_call}
    assert {b["call_id"] for b in theirs.events()} == {acme_call}
    assert {b["org"] for b in theirs.events()} == {"acme"}


async def test_a_dead_delivery_can_be_sent_again(tmp_path: Path) -> None:
    receiver = Receiver(status=503)
    async with receiving(receiver) as url, running(tmp_path, webhook_max_attempts=2) as bridge:
        webhook = await bridge.subscribe(url, events=["call.started"])
        receiver.secret = webhook["secret"]
        call_id = bridge.fake_call(agent="sales", end=False)

        async def dead() -> list[dict[str, object]]:
            return [d for d in await bridge.deliveries(webhook["id"]) if d["state"] == "dead"]

        await eventually(dead, 10, "a dead delivery")
        (row,) = await dead()
        assert (row["attempts"], row["last_status"], row["last_error"]) == (2, 503, "HTTP 503")
        assert len(receiver.requests) == 2
        listed = await bridge.http.get(
            f"/v1/webhooks/{webhook['id']}/deliveries?state=dead", headers=await bridge.key()
        )
        assert [d["id"] for d in listed.json()["deliveries"]] == [row["id"]]
        receiver.status = 200
        retry = await bridge.http.post(
            f"/v1/webhooks/{webhook['id']}/deliveries/{row['id']}/retry",
            headers=await bridge.key(),
        )
        assert retry.status_code == 200, retry.text
        assert (retry.json()["state"], retry.json()["attempts"]) == ("pending", 0)
        await until_types(receiver, call_id, 1)
        (delivered,) = await bridge.deliveries(webhook["id"])
    assert (delivered["state"], delivered["attempts"]) == ("delivered", 1)
    assert receiver.types(call_id) == ["call.started"]
