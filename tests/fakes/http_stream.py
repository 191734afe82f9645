"""What the HTTP fakes (:mod:`.elevenlabs_tts`, :mod:`.openai_chat`) share: streamed responses
that notice a client going away (:class:`LiveStream`), mid-response aborts
(:class:`StreamAbort`), pacing, and :class:`HttpFake` — serving a Starlette app with uvicorn,
the request log, failure knobs and the ``async with`` lifecycle of :class:`.common.FakeServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import typing
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Literal, Protocol, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .common import FakeServer

try:
    from .. import servers
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    import servers  # type: ignore[no-redef,import-not-found]

__all__ = [
    "HttpFake",
    "LiveStream",
    "Outcome",
    "RequestOutcome",
    "StreamAbort",
    "hang_forever",
    "pace",
    "quiet_stream_aborts",
    "read_body",
]


class StreamAbort(Exception):
    """Raised by a body iterator to drop the connection mid-response.

    uvicorn closes the transport when the app raises after the response started, so the
    client sees a truncated body (httpx: ``RemoteProtocolError``). :func:`quiet_stream_aborts`
    keeps these out of uvicorn's error log.
    """


class _DropStreamAborts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, StreamAbort)


_DROP_STREAM_ABORTS = _DropStreamAborts()


def quiet_stream_aborts() -> None:
    """Drop uvicorn's "Exception in ASGI application" records caused by :class:`StreamAbort`."""
    logging.getLogger("uvicorn.error").addFilter(_DROP_STREAM_ABORTS)


Outcome = Literal["completed", "cancelled", "aborted", "closed", "failed"]
RequestOutcome = Outcome | Literal["rejected", "streaming"]
"""What became of a request: refused before streaming, still streaming, or how it ended."""


class LiveStream(Response):
    """A streamed response that notices a client going away.

    ``chunks`` is sent as it is produced (chunked unless ``headers`` has a content length). A
    watcher waits on ASGI ``receive()`` meanwhile: ``http.disconnect`` before the body ends means
    the client left, and the producer is cancelled. ``on_end`` gets the outcome:
    ``completed``, ``cancelled`` (client left), ``aborted`` (the producer raised
    :class:`StreamAbort`), ``closed`` (the producer was cancelled — the fake shut down; the
    connection is dropped) or ``failed`` (the producer raised something else: a bug in the fake,
    passed as the second argument). Producer tasks are kept in ``tasks`` so the fake can
    cancel them on close.
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        media_type: str,
        on_end: Callable[[Outcome, BaseException | None], None],
        tasks: set[asyncio.Task[None]],
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self._chunks = chunks
        self._on_end = on_end
        self._tasks = tasks

    async def _produce(self, send: Send) -> None:
        async for chunk in self._chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        producer = asyncio.create_task(self._produce(send))
        watcher = asyncio.create_task(self._watch(receive))
        self._tasks.add(producer)
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._tasks.discard(producer)
            watcher.cancel()
            client_left = not producer.done()
            if client_left:
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)
        if client_left:
            self._on_end("cancelled", None)
            return
        if producer.cancelled():
            self._on_end("closed", None)
            raise StreamAbort("the fake closed")
        error = producer.exception()
        if isinstance(error, StreamAbort):
            self._on_end("aborted", None)
            raise error
        if error is not None:
            self._on_end("failed", error)
            raise StreamAbort("the fake failed") from error
        self._on_end("completed", None)


async def hang_forever() -> typing.NoReturn:
    """What a producer awaits to stop sending while keeping the connection open."""
    await asyncio.get_running_loop().create_future()
    raise AssertionError("unreachable")


def pace(t0: float, offset_s: float, factor: float) -> float:
    """Seconds to wait until ``offset_s`` of media, sent ``factor`` × faster than real time,
    is due (absolute schedule from ``t0``, so delays never accumulate; 0 = no pacing)."""
    if factor <= 0:
        return 0.0
    return max(0.0, t0 + offset_s / factor - time.monotonic())


async def read_body(request: Request) -> Any:
    """The request body as decoded JSON, or as text if it is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


# --------------------------------------------------------------------------- the base


class Exchange(Protocol):
    """What :class:`HttpFake` needs of a request record."""

    status: int
    outcome: RequestOutcome


V = TypeVar("V")
R = TypeVar("R", bound=Exchange)


class HttpFake(FakeServer[V], Generic[V, R]):
    """A Starlette app served by uvicorn on ``127.0.0.1`` (ephemeral port); ``R``: its request
    record.

    Subclasses implement :meth:`app` and ``_check`` (refuse a request as the API would, or
    ``None``), log each request through :meth:`_admit` and answer with a :class:`LiveStream`
    whose ``on_end`` is ``functools.partial(self._ended, record)`` and ``tasks`` is
    ``self._tasks``. ``fail_status`` / ``fail_times`` are live failure knobs, read by
    :meth:`_failure_due`.
    """

    def __init__(
        self, *, fail_status: int | None, fail_times: int | None, check_violations: bool
    ) -> None:
        super().__init__(check_violations=check_violations)
        self.fail_status = fail_status
        self.fail_times = fail_times
        self.requests: list[R] = []
        self.cancelled: list[R] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stack: contextlib.AsyncExitStack | None = None
        self._host = ""

    def app(self) -> Starlette:
        raise NotImplementedError

    def _check(self, record: R) -> Response | None:
        raise NotImplementedError

    async def _start(self) -> None:
        quiet_stream_aborts()
        stack = contextlib.AsyncExitStack()
        self._host = await stack.enter_async_context(servers.serve(self.app()))
        self._stack = stack

    async def aclose(self) -> None:
        """Stop serving; responses still open (hung or paced) are dropped."""
        for task in list(self._tasks):
            task.cancel()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    def _http_url(self, path: str = "") -> str:
        if not self._host:
            raise RuntimeError("the fake has not been started")
        return f"http://{self._host}{path}"

    @property
    def port(self) -> int:
        return int(self._http_url().rpartition(":")[2])

    async def wait_for_request(self, count: int = 1, *, within_s: float = 10.0) -> R:
        """Wait until ``count`` requests arrived in total; return the ``count``-th."""
        await self._until(lambda: len(self.requests) >= count, within_s)
        return self.requests[count - 1]

    def _admit(self, record: R) -> Response | None:
        """Log ``record``; the refusal to answer with (the record says ``rejected``), if any."""
        self.requests.append(record)
        self.notify()
        refusal = self._check(record)
        if refusal is not None:
            record.status, record.outcome = refusal.status_code, "rejected"
        return refusal

    def _failure_due(self) -> int | None:
        """``fail_status`` if set, counting ``fail_times`` down (reset when it reaches 0)."""
        status = self.fail_status
        if status is not None and self.fail_times is not None:
            self.fail_times -= 1
            if self.fail_times <= 0:
                self.fail_status = self.fail_times = None
        return status

    def _ended(self, record: R, outcome: Outcome, error: BaseException | None) -> None:
        record.outcome = outcome
        if outcome == "cancelled":
            self.cancelled.append(record)
        if error is not None:
            self.internal_errors.append(error)
        self.notify()
