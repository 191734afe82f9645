"""ToolDispatcher against httpx.MockTransport: every reply shape and every failure."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import httpx
import pytest

from bridge import __version__
from bridge.agents.model import Agent, ToolSpec
from bridge.errors import ToolError
from bridge.tools import MAX_REPLY_BYTES, ToolDispatcher, ToolOutcome, verify
from bridge.tools.webhook import interpret_reply

Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)
SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}}}


def make_agent(
    url: str | None = "https://tools.example.com/lookup",
    *,
    secret: str | None = "test-secret",
    timeout_s: float = 5.0,
    extra: Sequence[ToolSpec] = (),
) -> Agent:
    tool = ToolSpec("lookup_order", "Find an order.", SCHEMA, webhook=url, timeout_s=timeout_s)
    return Agent(name="support", tools=(tool, *extra), tool_secret=secret)


class FakeClock:
    """A wall clock that stands still, for a predictable signature timestamp."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A MockTransport handler that records requests and answers with a fixed response."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)


async def run(
    handler: Handler,
    agent: Agent | None = None,
    *,
    name: str = "lookup_order",
    arguments: dict[str, Any] | None = None,
    clock: FakeClock | None = None,
) -> ToolOutcome:
    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport) as client:
        dispatcher = ToolDispatcher(client, clock=clock or FakeClock(), monotonic=time.monotonic)
        return await dispatcher.run(
            agent=agent or make_agent(),
            call_id="CA1",
            tool_call_id="tc_1",
            name=name,
            arguments={"order_id": "A17"} if arguments is None else arguments,
            context={"from": "caller"},
        )


def error_of(outcome: ToolOutcome) -> str:
    assert not outcome.ok
    decoded = json.loads(outcome.output)
    assert list(decoded) == ["error"]
    assert decoded["error"] == outcome.error
    return str(decoded["error"])


async def test_json_success_and_request_shape() -> None:
    recorder = Recorder(lambda _: httpx.Response(200, json={"status": "shipped", "eta": "Fri"}))
    clock = FakeClock(1_700_000_123.9)
    outcome = await run(recorder, clock=clock)
    assert outcome.ok
    assert outcome.output == '{"status":"shipped","eta":"Fri"}'
    assert outcome.status_code == 200
    assert outcome.error is None
    assert outcome.duration_ms >= 0

    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == "https://tools.example.com/lookup"
    assert json.loads(request.content) == {
        "call_id": "CA1",
        "agent": "support",
        "tool_call_id": "tc_1",
        "tool": "lookup_order",
        "arguments": {"order_id": "A17"},
        "context": {"from": "caller"},
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"callbridge/{__version__}"
    assert request.headers["X-Callbridge-Timestamp"] == "1700000123"
    assert verify(
        "test-secret",
        request.headers["X-Callbridge-Timestamp"],
        request.headers["X-Callbridge-Signature"],
        request.content,
        now=clock.now,
    )
    assert not verify(
        "wrong-secret",
        request.headers["X-Callbridge-Timestamp"],
        request.headers["X-Callbridge-Signature"],
        request.content,
        now=clock.now,
    )


async def test_no_secret_no_signature_headers() -> None:
    recorder = Recorder(lambda _: httpx.Response(200, json={}))
    outcome = await run(recorder, make_agent(secret=None))
    assert outcome.ok
    (request,) = recorder.requests
    assert "X-Callbridge-Signature" not in request.headers
    assert "X-Callbridge-Timestamp" not in request.headers


async def test_non_ascii_arguments_are_utf8_json() -> None:
    recorder = Recorder(lambda _: httpx.Response(200, json={"ok": "Zoë"}))
    outcome = await run(recorder, arguments={"name": "Zoë"})
    assert outcome.output == '{"ok":"Zoë"}'
    assert '"name":"Zoë"'.encode() in recorder.requests[0].content


@pytest.mark.parametrize(
    ("content_type", "body", "output"),
    [
        ("text/plain", b"Order A17 shipped.", '{"result":"Order A17 shipped."}'),
        ("text/plain; charset=iso-8859-1", b"caf\xe9", '{"result":"café"}'),
        ("text/plain; charset=bogus", "café".encode(), '{"result":"café"}'),
        ('Text/Plain; Charset="UTF-8"', "naïve".encode(), '{"result":"naïve"}'),
        ("application/json", b" [1, 2,\n 3] ", "[1,2,3]"),
        ("application/problem+json", b'{"a": null}', '{"a":null}'),
        ("application/json", b'"just a string"', '"just a string"'),
        ("", b"", '{"result":"ok"}'),
        ("application/json", b"  ", '{"result":"ok"}'),
    ],
)
async def test_reply_shapes(content_type: str, body: bytes, output: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    outcome = await run(lambda _: httpx.Response(200, content=body, headers=headers))
    assert outcome.ok
    assert outcome.output == output
    json.loads(outcome.output)


@pytest.mark.parametrize("status", [201, 204])
async def test_other_2xx_are_success(status: int) -> None:
    outcome = await run(lambda _: httpx.Response(status))
    assert outcome.ok
    assert outcome.status_code == status


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (404, False), (302, False)])
async def test_non_2xx(status: int, retryable: bool) -> None:
    outcome = await run(lambda _: httpx.Response(status, json={"detail": "x"}))
    assert outcome.status_code == status
    assert error_of(outcome) == f"tool 'lookup_order': webhook answered HTTP {status}"
    with pytest.raises(ToolError) as caught:
        interpret_reply(status, "application/json", b"{}")
    assert caught.value.retryable is retryable


@pytest.mark.parametrize(
    ("content_type", "body", "problem"),
    [
        ("application/json", b"{not json", "not valid JSON"),
        ("application/json", b'{"x": NaN}', "not valid JSON"),
        ("application/json", b"[" * 50_000, "not valid JSON"),
        ("application/json", b"\xff\xfe\x00", "not valid JSON"),
        ("text/html", b"<html></html>", "content type text/html"),
        ("", b"data", "content type none"),
    ],
)
async def test_unusable_replies(content_type: str, body: bytes, problem: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    outcome = await run(lambda _: httpx.Response(200, content=body, headers=headers))
    assert problem in error_of(outcome)
    assert outcome.status_code == 200


async def test_oversized_reply_with_content_length() -> None:
    body = b'{"x": "' + b"a" * MAX_REPLY_BYTES + b'"}'
    outcome = await run(lambda _: httpx.Response(200, content=body))
    assert "larger than 65536 bytes" in error_of(outcome)
    assert outcome.status_code == 200


async def test_error_status_wins_over_an_oversized_body() -> None:
    outcome = await run(lambda _: httpx.Response(503, content=b"x" * (2 * MAX_REPLY_BYTES)))
    assert error_of(outcome) == "tool 'lookup_order': webhook answered HTTP 503"


async def test_oversized_streamed_reply_without_content_length() -> None:
    async def chunks() -> Any:
        for _ in range(100):
            yield b"a" * 1024

    outcome = await run(lambda _: httpx.Response(200, content=chunks()))
    assert "larger than" in error_of(outcome)


async def test_reply_of_exactly_the_cap_is_accepted() -> None:
    body = b'"' + b"a" * (MAX_REPLY_BYTES - 2) + b'"'
    outcome = await run(lambda _: httpx.Response(200, content=body, headers=JSON))
    assert outcome.ok


JSON = {"Content-Type": "application/json"}


def raising(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "problem"),
    [
        (httpx.ReadTimeout("slow"), "no reply within 5 s"),
        (httpx.ConnectTimeout("slow"), "no reply within 5 s"),
        (httpx.ConnectError("refused"), "could not connect to the webhook"),
        (httpx.RemoteProtocolError("bad"), "webhook request failed (RemoteProtocolError)"),
        (RuntimeError("bug"), "internal error"),
    ],
)
async def test_transport_failures(exc: Exception, problem: str) -> None:
    outcome = await run(raising(exc))
    assert error_of(outcome) == f"tool 'lookup_order': {problem}"
    assert outcome.status_code is None


async def test_whole_request_deadline() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)  # pragma: no cover - never reached

    started = time.monotonic()
    outcome = await run(slow, make_agent(timeout_s=0.1))
    assert time.monotonic() - started < 2
    assert error_of(outcome) == "tool 'lookup_order': no reply within 0.1 s"


async def test_slow_body_counts_against_the_deadline() -> None:
    async def trickle() -> Any:
        yield b'{"a":'
        await asyncio.sleep(10)
        yield b"1}"  # pragma: no cover - never reached

    outcome = await run(lambda _: httpx.Response(200, content=trickle()), make_agent(timeout_s=0.1))
    assert "no reply within 0.1 s" in error_of(outcome)


async def test_unknown_tool_makes_no_request() -> None:
    recorder = Recorder(lambda _: httpx.Response(200))
    outcome = await run(recorder, name="refund")
    assert error_of(outcome) == "tool 'refund': unknown tool for agent 'support'"
    assert recorder.requests == []


async def test_builtin_end_call_is_not_a_webhook_tool() -> None:
    outcome = await run(Recorder(lambda _: httpx.Response(200)), name="end_call")
    assert "unknown tool" in error_of(outcome)


async def test_tool_without_webhook() -> None:
    recorder = Recorder(lambda _: httpx.Response(200))
    outcome = await run(recorder, make_agent(url=None))
    assert error_of(outcome) == "tool 'lookup_order': no webhook is configured for this tool"
    assert recorder.requests == []


@pytest.mark.parametrize("arguments", [{"x": float("nan")}, {"x": {1, 2}}])
async def test_arguments_that_are_not_json(arguments: dict[str, Any]) -> None:
    recorder = Recorder(lambda _: httpx.Response(200))
    outcome = await run(recorder, arguments=arguments)
    assert "cannot be sent as JSON" in error_of(outcome)
    assert recorder.requests == []


async def test_picks_the_named_tool_among_several() -> None:
    other = ToolSpec("ping", "Ping.", {"type": "object"}, webhook="https://other.example/ping")
    recorder = Recorder(lambda _: httpx.Response(200, text="pong"))
    outcome = await run(recorder, make_agent(extra=[other]), name="ping")
    assert outcome.output == '{"result":"pong"}'
    assert str(recorder.requests[0].url) == "https://other.example/ping"


async def test_duration_uses_the_injected_monotonic_clock() -> None:
    ticks = iter([10.0, 10.25])
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200))
    ) as client:
        dispatcher = ToolDispatcher(client, clock=FakeClock(), monotonic=lambda: next(ticks))
        outcome = await dispatcher.run(
            agent=make_agent(), call_id="CA1", tool_call_id="t", name="lookup_order", arguments={}
        )
    assert outcome.duration_ms == 250.0


async def test_context_defaults_to_empty_object() -> None:
    recorder = Recorder(lambda _: httpx.Response(200))
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        await ToolDispatcher(client).run(
            agent=make_agent(), call_id="CA1", tool_call_id="t", name="lookup_order", arguments={}
        )
    assert json.loads(recorder.requests[0].content)["context"] == {}


async def test_cancellation_propagates() -> None:
    entered = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        entered.set()
        await asyncio.Event().wait()
        return httpx.Response(200)  # pragma: no cover - never reached

    task = asyncio.create_task(run(hang))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_logs_call_id_status_and_never_arguments_or_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="bridge.tools.webhook"):
        await run(lambda _: httpx.Response(200, json={}), arguments={"card": "4111-SENSITIVE"})
        await run(raising(httpx.ConnectError("no")), arguments={"card": "4111-SENSITIVE"})
    ok, failed = caplog.records
    assert ok.levelno == logging.INFO
    assert ok.getMessage().startswith("call CA1: tool lookup_order (tc_1) -> HTTP 200 in ")
    assert failed.levelno == logging.WARNING
    assert "call CA1" in failed.getMessage()
    assert "could not connect" in failed.getMessage()
    for record in caplog.records:
        assert getattr(record, "call_id", None) == "CA1"
    assert "SENSITIVE" not in caplog.text
    assert "test-secret" not in caplog.text
