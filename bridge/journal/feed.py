"""The journal as it happens: rows of live calls pushed to subscribers (the console's live
transcript, a call page left open).

The :class:`~bridge.journal.writer.JournalWriter` publishes every submission here as it takes it
(before the database write: a subscriber sees a turn as soon as the session records it).
Messages are plain JSON-ready dicts with a ``type``:

* ``status`` — ``{"status", "end_reason"}`` when a call starts (``in-progress``) and ends;
* ``turn`` — ``{"role", "text", "time_in_call_secs", "interrupted"}``;
* ``event`` — ``{"kind", "time_in_call_secs", "data"}``;
* ``tool_call`` — the fields of ``GET /v1/calls/{id}``'s ``tool_calls`` items.

Each live call keeps its messages (a *backlog*, bounded) so that a subscriber who comes late gets
the call from its start; a finished call's backlog is kept for the last ``keep_finished`` calls,
then the journal's read API is the place to look. A subscriber who does not keep up (its queue
of ``queue_size`` is full) is ended with a final ``{"type": "overflow"}`` instead of slowing the
calls down: publishing never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from bridge.session.actions import JournalAction, JournalEvent, JournalToolCall, JournalTurn

__all__ = ["FINAL", "JournalFeed", "Message", "Subscription", "message_of"]

Message = dict[str, Any]
MAX_NOTED_ORGS = 100_000
FINAL = "final"
"""Key set (True) on a ``status`` message that ends its call."""


def message_of(action: JournalAction) -> Message:
    """The feed message of one journal row."""
    if isinstance(action, JournalTurn):
        return {
            "type": "turn",
            "role": action.role,
            "text": action.text,
            "time_in_call_secs": action.time_in_call_secs,
            "interrupted": action.interrupted,
        }
    if isinstance(action, JournalEvent):
        return {
            "type": "event",
            "kind": action.kind,
            "time_in_call_secs": action.time_in_call_secs,
            "data": dict(action.data),
        }
    assert isinstance(action, JournalToolCall)
    return {
        "type": "tool_call",
        "tool_call_id": action.call_id,
        "name": action.name,
        "arguments": dict(action.arguments),
        "output": action.output,
        "ok": action.ok,
        "time_in_call_secs": action.time_in_call_secs,
        "duration_ms": action.duration_ms,
    }


class Subscription:
    """Messages of one call (or of every call: ``call_id`` None), in order."""

    def __init__(
        self,
        feed: JournalFeed,
        call_id: str | None,
        queue_size: int,
        where: Callable[[Message], bool] | None = None,
    ) -> None:
        self._feed = feed
        self.call_id = call_id
        self._where = where
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self.limit = queue_size
        """Most messages waiting to be read; one more and the subscriber is cut off."""
        self.overflowed = False

    def _offer(self, message: Message) -> None:
        if self.overflowed or (self._where is not None and not self._where(message)):
            return
        if self._queue.qsize() >= self.limit:  # what was read so far stays a whole prefix
            self.overflowed = True
            self._queue.put_nowait({"type": "overflow", "call_id": message.get("call_id")})
            return
        self._queue.put_nowait(message)

    def close(self) -> None:
        self._feed._drop(self)
        self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        while True:
            message = await self._queue.get()
            if message is None:
                return
            yield message
            if message["type"] == "overflow" or (self.call_id is not None and message.get(FINAL)):
                return


class JournalFeed:
    """Fan-out of journal submissions to live subscribers (see the module docstring)."""

    def __init__(
        self, *, backlog: int = 2_000, keep_finished: int = 64, queue_size: int = 1_000
    ) -> None:
        self._backlog_size = backlog
        self._keep_finished = keep_finished
        self._queue_size = queue_size
        self._backlogs: OrderedDict[str, deque[Message]] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._by_call: dict[str, set[Subscription]] = {}
        self._everything: set[Subscription] = set()
        self._orgs: dict[str, str] = {}  # call id → organization, while its backlog is kept
        self._starting: dict[str, asyncio.Event] = {}  # calls someone waits to see start

    # -- publishing (synchronous, never waits) --------------------------------------------------

    def call_started(self, call_id: str, fields: dict[str, Any]) -> None:
        self._backlogs[call_id] = deque(maxlen=self._backlog_size)
        org = fields.pop("org_id", None)
        if org:
            self._orgs[call_id] = org
        self._publish(call_id, {"type": "status", "status": "in-progress", **fields})
        waiting = self._starting.pop(call_id, None)
        if waiting is not None:
            waiting.set()

    async def wait_known(self, call_id: str, within_s: float) -> bool:
        """Wait (at most ``within_s``) until the call has started in the feed: a client may ask
        for a call's live stream before the runtime has journaled its start."""
        if call_id in self._backlogs:
            return True
        started = self._starting.setdefault(call_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(started.wait(), within_s)
        if not started.is_set():
            self._starting.pop(call_id, None)
        return call_id in self._backlogs

    def record(self, call_id: str, action: JournalAction) -> None:
        if call_id in self._backlogs or self._everything or call_id in self._by_call:
            self._publish(call_id, message_of(action))

    def call_updated(self, call_id: str, fields: dict[str, Any]) -> None:
        if "status" in fields:
            self._publish(call_id, {"type": "status", **fields})

    def call_finished(self, call_id: str, status: str, end_reason: str | None) -> None:
        message = {"type": "status", "status": status, "end_reason": end_reason, FINAL: True}
        self._publish(call_id, message)
        self._finished[call_id] = None
        while len(self._finished) > self._keep_finished:
            old, _ = self._finished.popitem(last=False)
            self._backlogs.pop(old, None)
            self._orgs.pop(old, None)

    def _publish(self, call_id: str, message: Message) -> None:
        message["call_id"] = call_id
        backlog = self._backlogs.get(call_id)
        if backlog is not None:
            backlog.append(message)
        for subscriber in self._by_call.get(call_id, ()):
            subscriber._offer(message)
        for subscriber in self._everything:
            subscriber._offer(message)

    # -- subscribing ----------------------------------------------------------------------------

    def known(self, call_id: str) -> bool:
        """The feed holds this call's messages from its start (live, or finished lately)."""
        return call_id in self._backlogs

    def note_org(self, call_id: str, org: str) -> None:
        """Remember the organization of a call the feed did not see start (its messages from a
        carrier's status callback, say), so organization-filtered subscribers get them."""
        self._orgs[call_id] = org
        while len(self._orgs) > MAX_NOTED_ORGS:
            self._orgs.pop(next(iter(self._orgs)))

    def org_of(self, call_id: str) -> str | None:
        """The organization of a call the feed holds (``None``: unknown to the feed)."""
        return self._orgs.get(call_id)

    def finished(self, call_id: str) -> bool:
        """The call has ended (and its backlog is still kept)."""
        return call_id in self._finished

    @contextlib.contextmanager
    def subscribe(
        self, call_id: str | None = None, *, where: Callable[[Message], bool] | None = None
    ) -> Iterator[Subscription]:
        """Messages of ``call_id`` from its start (its backlog first), or of every call from
        now on (``None``); with ``where``, only the messages it accepts (decided as they are
        published, so others never fill the subscriber's queue)."""
        subscription = Subscription(self, call_id, self._queue_size, where)
        if call_id is None:
            self._everything.add(subscription)
        else:
            backlog = self._backlogs.get(call_id, ())
            subscription.limit += len(backlog)  # a late subscriber gets the whole call so far
            for message in backlog:
                subscription._offer(message)
            self._by_call.setdefault(call_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscription.close()

    @property
    def subscribers(self) -> int:
        return len(self._everything) + sum(len(s) for s in self._by_call.values())

    def _drop(self, subscription: Subscription) -> None:
        if subscription.call_id is None:
            self._everything.discard(subscription)
            return
        subscribers = self._by_call.get(subscription.call_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._by_call[subscription.call_id]
