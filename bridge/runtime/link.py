"""The runtime's way out to the carrier: agent audio, marks and clears as frames on the socket.

Two kinds of link, chosen by the codec's ``playback``:

* :class:`DirectLink` (``"marks"``) sends every frame at once; the carrier buffers the audio,
  plays it at real time and answers marks as it plays them. When the carrier says its buffer is
  full (Asterisk ``MEDIA_XOFF``) the link *holds* frames, in order, and sends them all when the
  carrier takes audio again (``MEDIA_XON``): nothing is lost, nothing leaves while paused. A
  clear while paused drops the held audio but keeps the held marks' answers coming (as flushed).
  A carrier that tracks only so many marks (``codec.max_marks``: jambonz drops those past 30)
  is held the same way while that many are unanswered; every answer (and a clear, which
  settles them all) makes room. If no answer comes for ``mark_wait_s`` the carrier is taken
  not to answer: the owed marks are written off (``marks_written_off``) and the limit is
  ``lifted`` until it answers again, so such a carrier cannot mute or chop the agent.
* :class:`PacedLink` (``"paced"``) is for carriers that play whatever arrives at once and have no
  marks (AudioSocket): the link is the carrier's playout buffer. Frame *n* of a run leaves at
  ``start + n · frame_ms`` on an absolute schedule (no drift), and a mark is answered — through
  ``on_mark``, as if the carrier had sent it — when every frame before it has left. The heard
  clock is then the bridge's own send clock, accurate to one frame.

Both answer the session's marks the same way a carrier does after a clear (all pending at once),
so the session core cannot tell them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from bridge.carriers.base import CarrierCodec, Frame

__all__ = ["CarrierLink", "DirectLink", "FrameSocket", "PacedLink", "make_link"]


class FrameSocket(Protocol):
    async def send(self, frame: Frame) -> None: ...


MarkCallback = Callable[[str], Awaitable[None]]


class CarrierLink(Protocol):
    async def play(self, payload: bytes) -> None: ...

    async def mark(self, name: str) -> None: ...

    async def clear(self) -> None: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def answered(self, name: str) -> None: ...

    def close(self) -> None: ...


MARK_WAIT_S = 2.0
"""How long a link short of mark room waits for an answer before it lifts the limit."""


class DirectLink:
    """Frames straight to the socket, held in order while the carrier says XOFF or has no room
    for another mark (see the module docstring)."""

    def __init__(
        self, socket: FrameSocket, codec: CarrierCodec, *, mark_wait_s: float = MARK_WAIT_S
    ) -> None:
        self._socket = socket
        self._codec = codec
        self._held: deque[tuple[bool, Frame, str | None]] = deque()  # (is_audio, frame, mark)
        self.paused = False
        self.held_max = 0  # most frames ever held at once (for tests and the journal)
        self._room = codec.max_marks
        # marks sent and not answered (with a limit; past it only while the limit is lifted)
        self._unanswered: deque[str] = deque(maxlen=self._room)
        self.lifted = False  # the carrier stopped answering: no limit until it answers again
        self._mark_wait_s = mark_wait_s
        self._waiting: asyncio.TimerHandle | None = None
        self._write_off_task: asyncio.Task[None] | None = None
        self._releasing = False
        self.marks_written_off = 0

    async def play(self, payload: bytes) -> None:
        await self._send(True, self._codec.media(payload))

    async def mark(self, name: str) -> None:
        frame = self._codec.mark(name)
        if frame is not None:
            await self._send(False, frame, name)

    async def clear(self) -> None:
        if self._held:  # held audio never reached the carrier: drop it, keep the marks
            self._held = deque(item for item in self._held if not item[0])
        frame = self._codec.clear()
        if frame is not None:
            await self._socket.send(frame)
        self._unanswered.clear()  # a clear settles every mark the carrier held
        await self._release()

    async def pause(self) -> None:
        self.paused = True
        self._watch()

    async def resume(self) -> None:
        self.paused = False
        await self._release()

    async def answered(self, name: str) -> None:
        """The carrier answered mark ``name`` (played or flushed): it and every mark before it
        are settled (carriers play in order), which makes room for held frames."""
        if name not in self._unanswered:
            return
        while self._unanswered.popleft() != name:
            pass
        self.lifted = False
        if self._waiting is not None:  # progress: the wait starts again
            self._waiting.cancel()
            self._waiting = None
        await self._release()

    def close(self) -> None:
        self._held.clear()
        if self._waiting is not None:
            self._waiting.cancel()
        if self._write_off_task is not None:
            self._write_off_task.cancel()

    async def _send(self, is_audio: bool, frame: Frame, mark: str | None = None) -> None:
        if self.paused or self._held or (mark is not None and self._full()):
            self._held.append((is_audio, frame, mark))
            self.held_max = max(self.held_max, len(self._held))
            self._watch()
            return
        await self._socket.send(frame)
        if mark is not None and self._room is not None:
            self._unanswered.append(mark)

    async def _release(self) -> None:
        """Send held frames, in order, while the carrier takes them."""
        if self._releasing:  # the running release sees the new room itself
            return
        self._releasing = True
        try:
            while self._held and not self.paused:
                _, frame, mark = self._held[0]
                if mark is not None and self._full():
                    break
                self._held.popleft()
                await self._socket.send(frame)
                if mark is not None and self._room is not None:
                    self._unanswered.append(mark)
        finally:
            self._releasing = False
        self._watch()

    def _full(self) -> bool:
        return self._room is not None and not self.lifted and len(self._unanswered) >= self._room

    def _watch(self) -> None:
        """Wait at most ``mark_wait_s`` for mark room while frames are held for it."""
        short = bool(self._held) and not self.paused and self._full()
        if short and self._waiting is None:
            loop = asyncio.get_running_loop()
            self._waiting = loop.call_later(self._mark_wait_s, self._write_off)
        elif not short and self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None

    def _write_off(self) -> None:
        self._waiting = None
        self.marks_written_off += len(self._unanswered)
        self._unanswered.clear()
        self.lifted = True
        self._write_off_task = asyncio.get_running_loop().create_task(self._release())


class PacedLink:
    """The bridge as the carrier's playout buffer: audio at real time, marks answered by us.

    ``clock`` is ``loop.time``-like and ``sleep`` an ``asyncio.sleep``-like coroutine, both
    injectable for tests.
    """

    def __init__(
        self,
        socket: FrameSocket,
        codec: CarrierCodec,
        on_mark: MarkCallback,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._socket = socket
        self._codec = codec
        self._on_mark = on_mark
        self._clock = clock or asyncio.get_running_loop().time
        self._frame_s = codec.frame_ms / 1000.0
        self._queue: deque[bytes | str] = deque()  # audio (bytes) or a mark name (str)
        self._wake = asyncio.Event()
        self._paused = False
        self._task: asyncio.Task[None] | None = None
        self.frames_sent = 0

    async def play(self, payload: bytes) -> None:
        self._queue.append(payload)
        self._start()

    async def mark(self, name: str) -> None:
        self._queue.append(name)
        self._start()

    async def clear(self) -> None:
        flushed = [item for item in self._queue if isinstance(item, str)]
        self._queue.clear()
        frame = self._codec.clear()
        if frame is not None:
            await self._socket.send(frame)
        for name in flushed:  # as a carrier does: every pending mark answered at once
            await self._on_mark(name)

    async def pause(self) -> None:
        self._paused = True

    async def resume(self) -> None:
        self._paused = False
        self._wake.set()

    async def answered(self, name: str) -> None:
        """Nothing to settle: this link answers the marks itself."""

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._queue.clear()

    def _start(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        due: float | None = None  # when the next frame of the current run may leave
        while True:
            if not self._queue or self._paused:
                due = None  # idle (or held): the next audio opens a new run
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._queue[0]
            if isinstance(item, str):  # every frame before the mark has left
                self._queue.popleft()
                await self._on_mark(item)
                continue
            now = self._clock()
            if due is None or due < now - self._frame_s:  # (re)anchor; never send a burst
                due = now
            if due > now:
                with contextlib.suppress(TimeoutError):
                    self._wake.clear()
                    await asyncio.wait_for(self._wake.wait(), due - now)
                continue  # re-check: a clear may have emptied the queue meanwhile
            self._queue.popleft()
            await self._socket.send(self._codec.media(item))
            self.frames_sent += 1
            due += self._frame_s


def make_link(socket: FrameSocket, codec: CarrierCodec, on_mark: MarkCallback) -> CarrierLink:
    """The link the codec's playback accounting calls for."""
    if codec.playback == "paced":
        return PacedLink(socket, codec, on_mark)
    return DirectLink(socket, codec)
