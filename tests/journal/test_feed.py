"""The live journal feed: backlog then live messages, per call or for every call, the messages'
fields (those of the read API), slow subscribers, the finished calls kept, unsubscribing, and
the writer publishing before its database write.

Nothing here waits on time: a subscriber's messages are read with :func:`ready`, which takes
only what can be read without waiting (one event-loop step per message).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from bridge.api.calls import EventOut, ToolCallOut, TurnOut
from bridge.journal.feed import FINAL, JournalFeed, Message, Subscription, message_of
from bridge.journal.ids import new_call_id
from bridge.journal.store import JournalStore
from bridge.journal.writer import JournalWriter
from bridge.session.actions import JournalEvent, JournalToolCall, JournalTurn

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)

TURN = JournalTurn("agent", "Hello, how can I help?", 0.4)
USER = JournalTurn("user", "my card number is 4111", 2.25, interrupted=True)
EVENT = JournalEvent("barge_in", 3.0, MappingProxyType({"heard_ms": 120.0}))
TOOL = JournalToolCall("t-1", "lookup", {"id": "7"}, '{"ok":1}', True, 4.5, 12.5)


async def ready(subscription: Subscription) -> tuple[list[Message], bool]:
    """The messages ``subscription`` yields without waiting, and whether its iteration ended."""
    messages: list[Message] = []
    iterator = aiter(subscription)

    async def one() -> Message:
        return await anext(iterator)

    while True:
        step = asyncio.get_running_loop().create_task(one())
        await asyncio.sleep(0)  # one loop step: enough to take a message that is there
        if not step.done():
            step.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await step
            return messages, False
        try:
            messages.append(step.result())
        except StopAsyncIteration:
            return messages, True


def started(feed: JournalFeed, call_id: str = "c1") -> None:
    feed.call_started(call_id, {"carrier": "webrtc", "agent": "demo"})


def status(call_id: str, **fields: Any) -> Message:
    return {"type": "status", "status": "in-progress", **fields, "call_id": call_id}


def final(
    call_id: str, status: str = "completed", end_reason: str | None = "caller hung up"
) -> Message:
    return {
        "type": "status",
        "status": status,
        "end_reason": end_reason,
        FINAL: True,
        "call_id": call_id,
    }


def with_call(message: Message, call_id: str) -> Message:
    return {**message, "call_id": call_id}


# -- message_of --------------------------------------------------------------------------------


def test_a_turn_message_has_the_read_apis_fields() -> None:
    message = message_of(USER)
    assert message == {
        "type": "turn",
        "role": "user",
        "text": "my card number is 4111",
        "time_in_call_secs": 2.25,
        "interrupted": True,
    }
    assert message == {"type": "turn", **TurnOut.model_validate(USER).model_dump()}


def test_an_event_message_has_the_read_apis_fields() -> None:
    message = message_of(EVENT)
    assert message == {
        "type": "event",
        "kind": "barge_in",
        "time_in_call_secs": 3.0,
        "data": {"heard_ms": 120.0},
    }
    assert type(message["data"]) is dict  # a copy, JSON-ready, not the record's mapping
    assert message == {"type": "event", **EventOut.model_validate(EVENT).model_dump()}


def test_a_tool_call_message_has_the_read_apis_fields() -> None:
    message = message_of(TOOL)
    assert message == {
        "type": "tool_call",
        "tool_call_id": "t-1",
        "name": "lookup",
        "arguments": {"id": "7"},
        "output": '{"ok":1}',
        "ok": True,
        "time_in_call_secs": 4.5,
        "duration_ms": 12.5,
    }
    assert message == {"type": "tool_call", **ToolCallOut.model_validate(TOOL).model_dump()}
    assert "call_id" not in message  # the feed puts the journal call's id there


@pytest.mark.parametrize("action", [TURN, USER, EVENT, TOOL])
def test_every_message_is_json_ready(action: Any) -> None:
    message = message_of(action)
    assert orjson.loads(orjson.dumps(message)) == message


# -- one call ----------------------------------------------------------------------------------


async def test_a_subscriber_gets_the_backlog_then_live_messages_in_order() -> None:
    feed = JournalFeed()
    started(feed)
    feed.record("c1", TURN)
    with feed.subscribe("c1") as subscription:
        assert subscription.call_id == "c1"
        assert await ready(subscription) == (
            [status("c1", carrier="webrtc", agent="demo"), with_call(message_of(TURN), "c1")],
            False,
        )
        feed.record("c1", USER)
        feed.record("c1", EVENT)
        feed.call_updated("c1", {"status": "on-hold"})
        feed.record("c1", TOOL)
        feed.call_finished("c1", "completed", "caller hung up")
        messages, _ = await ready(subscription)
    assert messages == [
        with_call(message_of(USER), "c1"),
        with_call(message_of(EVENT), "c1"),
        {"type": "status", "status": "on-hold", "call_id": "c1"},
        with_call(message_of(TOOL), "c1"),
        final("c1"),
    ]
    assert [bool(m.get(FINAL)) for m in messages] == [False] * 4 + [True]  # only the last
    assert await ready(subscription) == ([], True)  # left the context: the iteration ended


async def test_a_late_subscriber_to_a_finished_call_gets_all_of_it() -> None:
    feed = JournalFeed()
    started(feed)
    feed.record("c1", TURN)
    feed.call_finished("c1", "failed", None)
    assert feed.known("c1") and feed.finished("c1")
    with feed.subscribe("c1") as subscription:
        messages, _ = await ready(subscription)
    assert messages == [
        status("c1", carrier="webrtc", agent="demo"),
        with_call(message_of(TURN), "c1"),
        final("c1", "failed", None),
    ]


async def test_a_subscriber_that_comes_before_the_call_gets_it_from_its_start() -> None:
    feed = JournalFeed()
    assert not feed.known("c1")
    with feed.subscribe("c1") as subscription:
        assert await ready(subscription) == ([], False)
        started(feed)
        feed.record("c1", TURN)
        assert await ready(subscription) == (
            [status("c1", carrier="webrtc", agent="demo"), with_call(message_of(TURN), "c1")],
            False,
        )


async def test_reading_stops_at_the_final_status_as_the_live_api_does() -> None:
    feed = JournalFeed()
    started(feed)
    with feed.subscribe("c1") as subscription:
        feed.record("c1", TURN)
        feed.call_finished("c1", "completed", "agent ended the call")
        seen = []
        async for message in subscription:
            seen.append(message["type"])
            if message.get(FINAL):
                break
    assert seen == ["status", "turn", "status"]


async def test_a_call_subscription_ends_by_itself_after_the_final_status() -> None:
    feed = JournalFeed()
    started(feed)
    with feed.subscribe("c1") as subscription:
        feed.call_finished("c1", "completed", None)
        messages, ended = await ready(subscription)
        assert messages[-1][FINAL]
        assert ended, "the iteration of a call's subscription should end after its FINAL status"


async def test_messages_of_other_calls_do_not_reach_a_call_subscriber() -> None:
    feed = JournalFeed()
    started(feed, "c1")
    with feed.subscribe("c1") as subscription:
        started(feed, "c2")
        feed.record("c2", TURN)
        feed.call_updated("c2", {"status": "on-hold"})
        feed.call_finished("c2", "completed", None)
        feed.record("c1", USER)
        messages, ended = await ready(subscription)
    assert [m["call_id"] for m in messages] == ["c1", "c1"]
    assert messages[1] == with_call(message_of(USER), "c1")
    assert not ended


async def test_updates_without_a_status_are_not_published() -> None:
    feed = JournalFeed()
    started(feed)
    with feed.subscribe("c1") as subscription:
        feed.call_updated("c1", {"from_number": "+15550100", "agent": "other"})
        feed.call_updated("c1", {"status": "transferring", "to_number": "+15550199"})
        messages, _ = await ready(subscription)
    assert messages[1:] == [
        {"type": "status", "status": "transferring", "to_number": "+15550199", "call_id": "c1"}
    ]


async def test_records_of_a_call_nobody_knows_are_not_kept() -> None:
    feed = JournalFeed()
    feed.record("ghost", TURN)  # no start, no subscriber: dropped
    assert not feed.known("ghost")
    with feed.subscribe("ghost") as subscription:
        assert await ready(subscription) == ([], False)
        feed.record("ghost", TURN)  # a subscriber now: delivered (still not kept)
        assert await ready(subscription) == ([with_call(message_of(TURN), "ghost")], False)
    assert not feed.known("ghost")


# -- every call --------------------------------------------------------------------------------


async def test_a_subscriber_to_everything_gets_every_call_from_subscription_on() -> None:
    feed = JournalFeed()
    started(feed, "c1")
    feed.record("c1", TURN)  # before the subscription: not replayed
    with feed.subscribe(None) as everything:
        assert everything.call_id is None
        assert await ready(everything) == ([], False)
        feed.record("c1", USER)
        started(feed, "c2")
        feed.record("c2", EVENT)
        feed.record("c3", TOOL)  # a call never started: still published to everything
        feed.call_finished("c1", "completed", None)
        feed.call_finished("c2", "failed", "engine unavailable")
        messages, ended = await ready(everything)
    assert messages == [
        with_call(message_of(USER), "c1"),
        status("c2", carrier="webrtc", agent="demo"),
        with_call(message_of(EVENT), "c2"),
        with_call(message_of(TOOL), "c3"),
        final("c1", "completed", None),
        final("c2", "failed", "engine unavailable"),
    ]
    assert not ended  # FINAL ends a call, not a subscription to every call


async def test_several_subscribers_each_get_every_message() -> None:
    feed = JournalFeed()
    started(feed)
    with (
        feed.subscribe("c1") as first,
        feed.subscribe("c1") as second,
        feed.subscribe(None) as everything,
    ):
        feed.record("c1", TURN)
        one, _ = await ready(first)
        two, _ = await ready(second)
        three, _ = await ready(everything)
    assert one == two == [status("c1", carrier="webrtc", agent="demo"), three[0]]
    assert three == [with_call(message_of(TURN), "c1")]


# -- slow subscribers ---------------------------------------------------------------------------


async def test_a_slow_subscriber_ends_with_one_overflow_and_publishing_goes_on() -> None:
    feed = JournalFeed(queue_size=3)
    started(feed)
    with feed.subscribe("c1") as slow, feed.subscribe(None) as everything:
        for n in range(1_000):  # never waits, never raises
            feed.record("c1", JournalTurn("agent", f"turn {n}", float(n)))
        assert slow.overflowed and everything.overflowed
        slow_messages, slow_ended = await ready(slow)
        all_messages, all_ended = await ready(everything)
        feed.call_finished("c1", "completed", None)  # after the overflow: nothing more
        assert await ready(slow) == ([], False)
    assert await ready(slow) == ([], True)
    overflow = {"type": "overflow", "call_id": "c1"}
    for messages, ended in ((slow_messages, slow_ended), (all_messages, all_ended)):
        assert messages[-1] == overflow and ended
        assert messages.count(overflow) == 1
        # at most its queue (the per-call one: plus the backlog it was given), then the overflow
        assert 1 < len(messages) <= 3 + 1 + 1
        assert {m["type"] for m in messages[:-1]} <= {"status", "turn"}
    assert feed.known("c1")  # the call's backlog is not the subscriber's queue


async def test_a_subscriber_that_keeps_up_never_overflows() -> None:
    feed = JournalFeed(queue_size=2)
    started(feed)
    with feed.subscribe(None) as subscription:
        for n in range(50):
            feed.record("c1", JournalTurn("user", str(n), float(n)))
            messages, ended = await ready(subscription)
            assert [m["text"] for m in messages] == [str(n)] and not ended
    assert not subscription.overflowed


async def test_what_a_slow_subscriber_reads_is_a_prefix_of_the_stream() -> None:
    feed = JournalFeed(queue_size=3)
    with feed.subscribe("c1") as slow:
        started(feed)
        for n in range(5):
            feed.record("c1", JournalTurn("agent", f"turn {n}", float(n)))
        messages, _ = await ready(slow)
    assert messages[0]["type"] == "status", (
        f"the slow subscriber lost the call's first message and read {messages}: it should read "
        "a prefix of the stream, then the overflow"
    )


async def test_a_late_subscriber_with_the_defaults_gets_the_whole_backlog() -> None:
    feed = JournalFeed()
    started(feed)
    for n in range(1_200):
        feed.record("c1", JournalTurn("agent", f"turn {n}", float(n)))
    with feed.subscribe("c1") as late:
        assert not late.overflowed, (
            "a subscriber that has not had a chance to read overflowed on the backlog alone"
        )


# -- finished calls, bounds, unsubscribing --------------------------------------------------------


async def test_finished_calls_are_forgotten_past_keep_finished() -> None:
    feed = JournalFeed(keep_finished=2)
    for call_id in ("c1", "c2", "c3", "c4"):
        started(feed, call_id)
    feed.call_finished("c1", "completed", None)
    feed.call_finished("c2", "completed", None)
    assert all(feed.known(c) for c in ("c1", "c2", "c3", "c4"))
    assert feed.finished("c1") and not feed.finished("c3")
    feed.call_finished("c3", "completed", None)  # c1 is the third finished: forgotten
    assert not feed.known("c1") and not feed.finished("c1")
    assert feed.known("c2") and feed.known("c3") and feed.known("c4")
    assert feed.finished("c2") and feed.finished("c3") and not feed.finished("c4")
    with feed.subscribe("c1") as subscription:  # the read API's business now
        assert await ready(subscription) == ([], False)
    feed.call_finished("c4", "completed", None)
    assert [c for c in ("c1", "c2", "c3", "c4") if feed.known(c)] == ["c3", "c4"]


async def test_a_call_keeps_only_its_last_backlog_messages() -> None:
    feed = JournalFeed(backlog=3)
    started(feed)
    for n in range(5):
        feed.record("c1", JournalTurn("agent", f"turn {n}", float(n)))
    with feed.subscribe("c1") as subscription:
        messages, _ = await ready(subscription)
    assert [m["text"] for m in messages] == ["turn 2", "turn 3", "turn 4"]


async def test_leaving_the_context_unsubscribes() -> None:
    feed = JournalFeed()
    started(feed)
    assert feed.subscribers == 0
    with feed.subscribe("c1") as first:
        assert feed.subscribers == 1
        with feed.subscribe(None), feed.subscribe("c1"), feed.subscribe("c2"):
            assert feed.subscribers == 4
        assert feed.subscribers == 1
        feed.record("c1", TURN)
    assert feed.subscribers == 0
    feed.record("c1", USER)  # reaches no one: the subscription is closed
    messages, ended = await ready(first)
    assert messages == [
        status("c1", carrier="webrtc", agent="demo"),
        with_call(message_of(TURN), "c1"),
    ]
    assert ended


async def test_an_error_inside_the_context_unsubscribes_too() -> None:
    feed = JournalFeed()
    inside: list[int] = []

    def read_and_fail() -> None:
        with feed.subscribe("c1"):
            inside.append(feed.subscribers)
            raise RuntimeError("reader failed")

    with pytest.raises(RuntimeError, match="reader failed"):
        read_and_fail()
    assert inside == [1]
    assert feed.subscribers == 0
    started(feed)  # publishing to a call whose subscribers all left
    assert feed.known("c1")


# -- the writer publishes -----------------------------------------------------------------------


async def test_the_writers_submissions_reach_subscribers_before_any_write(
    sqlite_journal: JournalStore,
) -> None:
    writer = JournalWriter(sqlite_journal)
    call_id = new_call_id()
    with writer.feed.subscribe(call_id) as subscription:
        writer.call_started(
            call_id, carrier="webrtc", started_at=T0, agent="demo", from_number="+15550100"
        )
        writer.record(call_id, TURN)
        writer.record(call_id, TOOL)
        writer.call_updated(call_id, from_number="+15550101")  # no status: not published
        writer.call_updated(call_id, status="transferring")
        writer.call_finished(
            call_id,
            status="completed",
            end_reason="caller hung up",
            ended_at=T0 + timedelta(seconds=9),
        )
        messages, _ = await ready(subscription)  # the writer has not even started
    assert messages == [
        status(call_id, carrier="webrtc", agent="demo"),
        with_call(message_of(TURN), call_id),
        with_call(message_of(TOOL), call_id),
        {"type": "status", "status": "transferring", "call_id": call_id},
        final(call_id),
    ]
    assert writer.pending == 6
    assert await sqlite_journal.get_call(call_id) is None
    await writer.start()
    await writer.flush()
    detail = await sqlite_journal.get_call(call_id)
    assert detail is not None
    assert detail.transcript == (TURN,) and detail.tool_calls == (TOOL,)
    assert detail.call.status == "completed"
    await writer.close()


async def test_a_writer_publishes_on_the_feed_it_is_given(sqlite_journal: JournalStore) -> None:
    feed = JournalFeed(keep_finished=1)
    writer = JournalWriter(sqlite_journal, feed=feed)
    assert writer.feed is feed
    call_id = new_call_id()
    with feed.subscribe(None) as everything:
        writer.call_started(call_id, carrier="twilio", started_at=T0)
        messages, _ = await ready(everything)
    assert messages == [status(call_id, carrier="twilio", agent=None)]
    assert feed.known(call_id)


async def test_a_refused_submission_is_not_published(sqlite_journal: JournalStore) -> None:
    writer = JournalWriter(sqlite_journal)
    call_id = new_call_id()
    with writer.feed.subscribe(None) as everything:
        with pytest.raises(ValueError, match="timezone-aware"):
            writer.call_started(call_id, carrier="webrtc", started_at=datetime(2025, 1, 1))
        with pytest.raises(TypeError, match="does not know"):
            writer.call_started(call_id, carrier="webrtc", started_at=T0, colour="red")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="cannot change"):
            writer.call_updated(call_id, status="x", colour="red")  # type: ignore[call-arg]
        assert await ready(everything) == ([], False)
    assert not writer.feed.known(call_id)
    await writer.close()


async def test_waiting_for_a_call_that_has_not_started_yet() -> None:
    feed = JournalFeed()
    waiter = asyncio.create_task(feed.wait_known("c1", 5.0))
    await asyncio.sleep(0)
    assert not waiter.done()
    feed.call_started("c1", {})
    assert await waiter is True
    assert await feed.wait_known("c1", 0.0) is True  # known: no wait
    assert await feed.wait_known("never", 0.01) is False
    assert feed._starting == {}  # nothing left behind
