"""The runtime's way out to the carrier: agent audio, marks and clears as frames on the socket.

Two kinds of link, chosen by the codec's ``playback``:

* :class:`DirectLink` (``"marks"``) sends every frame at once; the carrier buffers the audio,
  plays it at real time and answers marks as it plays them. When the carrier says its buffer is
  full (Asterisk ``MEDIA_XOFF``) the link *holds* frames, in order, and sends them all when the
  carrier takes audio again (``MEDIA_XON``): nothing is lost, nothing leaves while paused. A
  clear while paused drops the held audio but keeps the held marks' answers coming (as flushed).
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

    def close(self) -> None: ...


class DirectLink:
    """Frames straight to the socket, held in order while the carrier says XOFF."""

    def __init__(self, socket: FrameSocket, codec: CarrierCodec) -> None:
        self._socket = socket
        self._codec = codec
        self._held: deque[tuple[bool, Frame]] = deque()  # (is_audio, frame)
        self.paused = False
        self.held_max = 0  # most frames ever held at once (for tests and the journal)

    async def play(self, payload: bytes) -> None:
        await self._send(True, self._codec.media(payload))

    async def mark(self, name: str) -> None:
        frame = self._codec.mark(name)
        if frame is not None:
            await self._send(False, frame)

    async def clear(self) -> None:
        if self._held:  # held audio never reached the carrier: drop it, keep the marks
            self._held = deque(item for item in self._held if not item[0])
        frame = self._codec.clear()
        if frame is not None:
            await self._socket.send(frame)

    async def pause(self) -> None:
        self.paused = True

    async def resume(self) -> None:
        self.paused = False
        while self._held and not self.paused:
            _, frame = self._held.popleft()
            await self._socket.send(frame)

    def close(self) -> None:
        self._held.clear()

    async def _send(self, is_audio: bool, frame: Frame) -> None:
        if self.paused or self._held:
            self._held.append((is_audio, frame))
            self.held_max = max(self.held_max, len(self._held))
            return
        await self._socket.send(frame)


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
