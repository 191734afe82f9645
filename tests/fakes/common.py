"""What every fake server shares: the ``async with`` lifecycle and its checks, the waiters,
and (for the websocket fakes) serving, connection tracking and the message logs.

A fake subclasses :class:`WebsocketFake` or :class:`.http_stream.HttpFake` and supplies what
is its own: the handshake, the per-connection logic, its URLs and its observability lists. Both
bases keep the fake's public surface: ``async with`` (leaving the block raises
``AssertionError`` if the fake failed, or if the client broke the protocol and
``check_violations`` is set), :meth:`~FakeServer.aclose`, :attr:`~FakeServer.violations`,
:meth:`~FakeServer.take_violations`, :attr:`~FakeServer.internal_errors`.

It also owns the two awkward imports the fakes share: :mod:`speech` (``tests/speech.py``,
whichever way pytest imported ``tests``) and :mod:`audioop` (deprecated, hence the filter).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

try:
    from .. import speech
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    import speech  # type: ignore[no-redef,import-not-found]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = [
    "Connection",
    "FakeServer",
    "Message",
    "Tasks",
    "WebsocketFake",
    "audioop",
    "sleep_until",
    "speech",
]

Message = dict[str, Any]

V = TypeVar("V")


class FakeServer(Generic[V]):
    """An async context manager around a server on ``127.0.0.1``; ``V``: its violation type.

    Subclasses implement :meth:`_start` and :meth:`aclose`, and name what a violation is in
    :attr:`_violations_are` (the message of the ``AssertionError`` on leaving the block).
    Whatever changes an observed list calls :meth:`notify`, which wakes :meth:`_until`.
    """

    _violations_are: ClassVar[str] = "protocol violations"

    def __init__(self, *, check_violations: bool) -> None:
        self.check_violations = check_violations
        self.violations: list[V] = []
        self.internal_errors: list[BaseException] = []
        self._waiters: list[asyncio.Future[None]] = []

    async def _start(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        if exc is not None:
            return
        if self.internal_errors:
            raise AssertionError(f"the fake failed: {self.internal_errors!r}")
        if self.check_violations and self.violations:
            raise AssertionError(f"{self._violations_are}: {self.violations!r}")

    def take_violations(self) -> list[V]:
        """Return and clear :attr:`violations` (for tests that provoke them on purpose)."""
        taken, self.violations[:] = list(self.violations), []
        return taken

    def notify(self) -> None:
        """Wake :meth:`wait_for` and friends (call after changing an observed list)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _until(self, done: Callable[[], bool], within_s: float) -> None:
        """Return once ``done()`` holds, checked after every :meth:`notify`; raises
        ``TimeoutError`` after ``within_s``."""
        async with asyncio.timeout(within_s):
            while not done():
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter


class Connection(Protocol):
    """One accepted websocket and the object that drives it until it closes."""

    @property
    def ws(self) -> ServerConnection: ...

    async def run(self) -> None: ...


C = TypeVar("C", bound=Connection)


class WebsocketFake(FakeServer[V], Generic[V, C]):
    """A websocket fake on an ephemeral port: ``C`` is its per-connection class.

    Subclasses implement ``_process_request`` (the handshake) and ``_handle`` (build a ``C``,
    record it, then ``await self._serve(connection)``). They append what goes out and comes in
    to :attr:`sent` and :attr:`received` as ``(time.monotonic(), message)`` and call
    :meth:`notify`; :meth:`wait_for` reads them.
    """

    _max_size: ClassVar[int | None] = 2**20  # largest incoming message (websockets' default)
    _untyped_received: ClassVar[str | None] = None  # the type of a received message without one

    def __init__(self, *, check_violations: bool) -> None:
        super().__init__(check_violations=check_violations)
        self.received: list[tuple[float, Message]] = []
        self.sent: list[tuple[float, Message]] = []
        self.connections = 0
        self._server: Server | None = None
        self._port = 0
        self._live: set[C] = set()

    # ------------------------------------------------------------------ lifecycle

    def _warm_up(self) -> None:
        """Start what the first connection would otherwise wait for (before serving)."""

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        raise NotImplementedError

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        """Change the response to an accepted handshake (default: none)."""
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    async def _start(self) -> None:
        self._warm_up()
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            process_response=self._process_response,
            max_size=self._max_size,
            close_timeout=2,
        )
        sockname: tuple[str, int] = next(iter(self._server.sockets)).getsockname()
        self._port = sockname[1]

    async def aclose(self) -> None:
        if self._server is None:
            return
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        self._server = None

    @property
    def port(self) -> int:
        """The listening port (still known after the server stopped, to test refused connects)."""
        if not self._port:
            raise RuntimeError("the fake has not been started")
        return self._port

    # ------------------------------------------------------------------ connections

    async def _serve(self, connection: C) -> None:
        """Count ``connection`` and drive it until it closes; an exception there is a bug in
        the fake (:attr:`internal_errors`, and the socket closes with 1011)."""
        self.connections += 1
        self._live.add(connection)
        self.notify()
        try:
            await connection.run()
        except Exception as exc:
            self.internal_errors.append(exc)
            await connection.ws.close(1011, "fake server error")
        finally:
            self._live.discard(connection)

    async def _close(self, connection: C, code: int, reason: str) -> None:
        await connection.ws.close(code, reason)

    async def drop_connections(
        self, code: int = 1011, reason: str = "Internal server error", *, abort: bool = False
    ) -> None:
        """Close every open connection mid-call with ``code``/``reason`` (1000, 1008, 1011 …),
        or (``abort``) drop the TCP connection without a close frame (the client sees 1006)."""
        live = list(self._live)
        if abort:
            for connection in live:
                connection.ws.transport.abort()
            return
        await asyncio.gather(*(self._close(connection, code, reason) for connection in live))

    # ------------------------------------------------------------------ observability

    def sent_of(self, type_: str) -> list[Message]:
        """Every message of ``type_`` sent so far (all connections)."""
        return [message for _, message in self.sent if message.get("type") == type_]

    def received_of(self, type_: str) -> list[Message]:
        """Every valid client message of ``type_`` received so far (all connections)."""
        untyped = self._untyped_received
        return [message for _, message in self.received if message.get("type", untyped) == type_]

    async def wait_for(
        self,
        type_: str,
        *,
        count: int = 1,
        within_s: float = 10.0,
        received: bool = False,
        where: Callable[[Message], bool] | None = None,
    ) -> Message:
        """Wait until ``count`` messages of ``type_`` (matching ``where``) were sent (or
        ``received``); return the ``count``-th. Raises ``TimeoutError`` after ``within_s``."""
        source = self.received_of if received else self.sent_of

        def matching() -> list[Message]:
            return [m for m in source(type_) if where is None or where(m)]

        await self._until(lambda: len(matching()) >= count, within_s)
        return matching()[count - 1]

    async def wait_connections(self, count: int, *, within_s: float = 10.0) -> None:
        """Wait until ``count`` connections have been accepted in total."""
        await self._until(lambda: self.connections >= count, within_s)


async def sleep_until(wake: asyncio.Event, deadline: float) -> None:
    """Sleep until loop time ``deadline``, or less if ``wake`` is set meanwhile (pacing that an
    interruption or a cancel cuts short)."""
    delay = deadline - asyncio.get_running_loop().time()
    if delay <= 0:
        await asyncio.sleep(0)
        return
    try:
        await asyncio.wait_for(wake.wait(), delay)
    except TimeoutError:
        pass


class Tasks:
    """The background tasks of one connection; one that fails is a bug in the fake (its
    exception goes to ``errors``, the fake's :attr:`~FakeServer.internal_errors`)."""

    def __init__(self, errors: list[BaseException]) -> None:
        self._errors = errors
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            self._errors.append(failure)

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait until they have ended."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def run_until_closed(
        self, ws: ServerConnection, dispatch: Callable[[str | bytes], Awaitable[None]]
    ) -> None:
        """Hand every message on ``ws`` to ``dispatch`` until the socket closes, then cancel
        the tasks (a connection's main loop)."""
        try:
            async for message in ws:
                await dispatch(message)
        except ConnectionClosed:
            pass
        finally:
            await self.cancel_all()
