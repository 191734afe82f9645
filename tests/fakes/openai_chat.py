"""A fake OpenAI-compatible chat-completions API on loopback, for tests.

``POST /v1/chat/completions``, streaming (Server-Sent Events) or not, so the official SDK (or
the bridge's cascaded engine) can talk to it unchanged::

    async with FakeChatLLM(scripted("Hello!", Reply.call("lookup_order", {"id": "42"}))) as fake:
        client = AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=[...],
                                                      tools=[...], stream=True)
    # leaving the block fails the test if a request was invalid (fake.violations)

What it checks: ``Authorization: Bearer …`` (401 with OpenAI's error body), the body against the
SDK's own ``CompletionCreateParamsStreaming`` / ``…NonStreaming`` TypedDicts through
``pydantic.TypeAdapter`` — plus what those cannot say: unknown keys at any depth (pydantic drops
them from TypedDicts silently), tool messages that answer no preceding ``tool_calls`` (or
``tool_calls`` left unanswered), tool names and top-level parameter schemas, a ``tool_choice``
naming no tool, ``temperature``/``top_p`` ranges, ``stream_options`` without ``stream``. A
violation gets a 400 ``invalid_request_error`` and an entry in :attr:`FakeChatLLM.violations`.

What it answers: a *responder* ``(messages) -> Reply | None`` (:class:`.openai_script.Reply`;
:func:`.openai_script.scripted` works too) — text as content deltas of a few characters each,
a tool call as ``delta.tool_calls`` (id and name, then the arguments JSON in pieces), or both.
Every chunk / completion is validated against ``ChatCompletionChunk`` / ``ChatCompletion``
before it is sent (a failure is a bug here). Not modelled: ``n`` > 1 (400, not a violation),
logprobs, audio output, refusals, structured outputs, parallel tool calls in one reply.

Streaming machinery (client-disconnect detection, aborts, pacing) and the serving lifecycle
come from :mod:`.http_stream`, shared with :mod:`.elevenlabs_tts`.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import pydantic
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .http_stream import (
    HttpFake,
    LiveStream,
    RequestOutcome,
    StreamAbort,
    hang_forever,
    pace,
    read_body,
)
from .openai_script import Reply, ScriptedResponder

__all__ = [
    "ChatRequest",
    "ChatRequestInvalid",
    "ChatResponder",
    "ChatViolation",
    "FakeChatLLM",
    "chat_echo_responder",
    "plan_reply",
    "split_text",
    "validate_chat_request",
]

Message = dict[str, Any]
ChatResponder = Callable[[list[Message]], "Reply | None"]

# --------------------------------------------------------------------------- request validation

_STREAMING = pydantic.TypeAdapter(CompletionCreateParamsStreaming)
_NON_STREAMING = pydantic.TypeAdapter(CompletionCreateParamsNonStreaming)
_KNOWN_KEYS = frozenset(
    CompletionCreateParamsStreaming.__required_keys__
    | CompletionCreateParamsStreaming.__optional_keys__
)
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ChatRequestInvalid(ValueError):
    """A request the API refuses; fields mirror OpenAI's ``error`` object. ``violation`` is
    false for what the real API accepts but the fake does not model (e.g. ``n`` > 1)."""

    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        *,
        violation: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.violation = violation


def _loc(path: str, loc: tuple[int | str, ...]) -> str:
    """pydantic location → ``messages[1].content``, dropping union-member tags."""
    out = path
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part[:1].isupper() or "[" in part or part in ("str", "int", "float", "bool"):
            continue
        else:
            out += f".{part}" if out else part
    return out


def _from_pydantic(exc: pydantic.ValidationError, path: str = "") -> ChatRequestInvalid:
    errors = exc.errors(include_url=False)
    # In a union, a literal mismatch means "wrong member": prefer an error from the right one.
    first = next((e for e in errors if e["type"] != "literal_error"), errors[0])
    param = _loc(path, first["loc"])
    if first["type"] == "missing":
        return ChatRequestInvalid(
            f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    return ChatRequestInvalid(
        f"Invalid value for '{param}': {first['msg']}.", param, "invalid_value"
    )


def _materialize(value: Any, path: str) -> Any:
    """Run pydantic's lazy ``Iterable[...]`` validators (the SDK types ``messages``, ``tools``
    and content parts as iterables, which pydantic validates only when iterated)."""
    if isinstance(value, dict):
        return {
            key: _materialize(item, f"{path}.{key}" if path else key) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_materialize(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Iterator):
        try:
            items = list(value)
        except pydantic.ValidationError as exc:
            raise _from_pydantic(exc, path) from None
        return [_materialize(item, f"{path}[{i}]") for i, item in enumerate(items)]
    return value


def _dropped_keys(given: Any, kept: Any, path: str) -> Iterator[str]:
    """Keys present in the request but gone after validation: TypedDicts drop unknown keys."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            where = f"{path}.{key}" if path else key
            if key not in kept:
                yield where
            else:
                yield from _dropped_keys(value, kept[key], where)
    elif isinstance(given, list) and isinstance(kept, list):
        for index, (a, b) in enumerate(zip(given, kept, strict=False)):
            yield from _dropped_keys(a, b, f"{path}[{index}]")


def validate_chat_request(body: Any) -> dict[str, Any]:
    """Check a decoded request body; return it validated or raise :class:`ChatRequestInvalid`."""
    if not isinstance(body, dict):
        raise ChatRequestInvalid("The request body must be a JSON object.", None, None)
    unknown = sorted(set(body) - _KNOWN_KEYS)
    if unknown:
        raise ChatRequestInvalid(
            f"Unrecognized request argument supplied: {', '.join(unknown)}",
            unknown[0],
            "unknown_parameter",
        )
    adapter = _STREAMING if body.get("stream") is True else _NON_STREAMING
    try:
        validated = _materialize(adapter.validate_python(body), "")
    except pydantic.ValidationError as exc:
        raise _from_pydantic(exc) from None
    extra = next(_dropped_keys(body, validated, ""), None)
    if extra is not None:
        raise ChatRequestInvalid(
            f"Unrecognized request argument supplied: {extra}", extra, "unknown_parameter"
        )
    _check_semantics(validated)
    return cast(dict[str, Any], validated)


def _check_range(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is not None and not low <= value <= high:
        raise ChatRequestInvalid(
            f"Invalid '{name}': expected a value between {low} and {high}, but got {value}.",
            name,
            "decimal_above_max_value" if value > high else "decimal_below_min_value",
        )


def _check_semantics(body: dict[str, Any]) -> None:
    messages: list[Message] = body["messages"]
    if not messages:
        raise ChatRequestInvalid("[] is too short - 'messages'", "messages", "empty_array")
    _check_range(body, "temperature", 0, 2)
    _check_range(body, "top_p", 0, 1)
    if body.get("n") not in (None, 1):
        raise ChatRequestInvalid("The fake supports n=1 only.", "n", None, violation=False)
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise ChatRequestInvalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            None,
        )
    names = _check_tools(body.get("tools") or [])
    choice = body.get("tool_choice")
    if choice is not None and not names:
        raise ChatRequestInvalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            "tool_choice",
            None,
        )
    named = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if named is not None and named not in names:
        raise ChatRequestInvalid(
            f"Tool choice '{named}' not found in 'tools' parameter.", "tool_choice", None
        )
    _check_tool_messages(messages)


def _check_tools(tools: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for index, tool in enumerate(tools):
        if tool.get("type") != "function":
            continue
        function = tool["function"]
        name = function["name"]
        if not _TOOL_NAME.match(name):
            raise ChatRequestInvalid(
                f"Invalid 'tools[{index}].function.name': string does not match pattern. "
                "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                f"tools[{index}].function.name",
                "invalid_value",
            )
        names.add(name)
        schema = function.get("parameters")
        if schema is None:
            continue
        problem = None
        if schema.get("type") != "object":
            problem = (
                "schema must be a JSON Schema of 'type: \"object\"', "
                f"got 'type: \"{schema.get('type')}\"'."
            )
        elif not isinstance(schema.get("properties", {}), dict):
            problem = "'properties' must be an object."
        elif function.get("strict"):
            props = schema.get("properties", {})
            missing = [key for key in props if key not in (schema.get("required") or [])]
            if schema.get("additionalProperties") is not False:
                problem = "'additionalProperties' is required to be supplied and to be false."
            elif missing:
                problem = (
                    "'required' is required to be supplied and to be an array including every "
                    f"key in properties. Missing '{missing[0]}'."
                )
        if problem:
            raise ChatRequestInvalid(
                f"Invalid schema for function '{name}': {problem}",
                f"tools[{index}].function.parameters",
                "invalid_function_parameters",
            )
    return names


def _check_tool_messages(messages: list[Message]) -> None:
    """Every ``tool`` message answers the last assistant ``tool_calls``; every call is answered."""
    pending: dict[str, int] = {}
    answering = False
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not answering or call_id not in pending:
                raise ChatRequestInvalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                    None,
                )
            del pending[call_id]
            continue
        _unanswered(pending)
        answering = role == "assistant" and bool(message.get("tool_calls"))
        pending = {call["id"]: index for call in message.get("tool_calls") or []}
    _unanswered(pending)


def _unanswered(pending: dict[str, int]) -> None:
    if pending:
        index = min(pending.values())
        raise ChatRequestInvalid(
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response "
            f"messages: {', '.join(pending)}",
            f"messages.[{index}].role",
            None,
        )


# --------------------------------------------------------------------------- replies (pure)

_PIECE = re.compile(r"\s*\S{1,6}|\s+")


def split_text(text: str, size: int = 6) -> list[str]:
    """Token-like pieces: each word with its leading space, long words cut every ``size``
    characters. ``"".join(split_text(t)) == t``."""
    pattern = _PIECE if size == 6 else re.compile(rf"\s*\S{{1,{size}}}|\s+")
    return pattern.findall(text)


def plan_reply(reply: Reply | None, call_id: str) -> tuple[list[dict[str, Any]], str]:
    """The deltas of one assistant turn (after the role delta) and its ``finish_reason``.

    Content first (``say``), then at most one tool call: a delta with ``id``, ``type`` and
    ``name`` (``arguments: ""``), then the arguments JSON in 8-character pieces.
    """
    if reply is None:
        return [], "stop"
    deltas: list[dict[str, Any]] = [{"content": piece} for piece in split_text(reply.text)]
    if not reply.name:
        return deltas, "stop"
    deltas.append(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": reply.name, "arguments": ""},
                }
            ]
        }
    )
    arguments = json.dumps(reply.arguments)
    for start in range(0, len(arguments), 8):
        piece = arguments[start : start + 8]
        deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    return deltas, "tool_calls"


def _speakable(text: str) -> str:
    return " ".join(re.findall(r"[A-Za-z0-9']+", text))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def chat_echo_responder(messages: list[Message]) -> Reply:
    """Default responder: "you said <last user message>", or describe the tool result."""
    last = messages[-1] if messages else {}
    if last.get("role") == "user":
        return Reply.say(f"you said {_text_of(last.get('content'))}")
    if last.get("role") == "tool":
        return Reply.say("the tool returned a result")
    return Reply.say("hello how can I help you")


# --------------------------------------------------------------------------- the fake

_FAILURES: dict[int, tuple[str, str, str | None]] = {
    429: ("Rate limit reached for requests (fake).", "requests", "rate_limit_exceeded"),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def _error(status: int, message: str, kind: str, param: str | None, code: str | None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


@dataclass(frozen=True)
class ChatViolation:
    """A request the real API would have refused (the fake answered 400)."""

    message: str
    param: str | None
    code: str | None
    request: ChatRequest


@dataclass
class ChatRequest:
    """One request: the full ``body`` and ``headers`` as received (``at``:
    ``time.monotonic()``), then ``status``, the ``reply`` chosen, ``chunks_sent`` (chunk events
    streamed) and the ``outcome``."""

    body: Any
    headers: dict[str, str]
    at: float
    status: int = 0
    reply: Reply | None = None
    chunks_sent: int = 0
    outcome: RequestOutcome = "streaming"

    @property
    def messages(self) -> list[Message]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []


class FakeChatLLM(HttpFake[ChatViolation, ChatRequest]):
    """Async context manager serving the fake on ``127.0.0.1`` (ephemeral port) via uvicorn.

    Options:
        responder: ``(messages) -> Reply | None`` (the request's messages, deep-copied); a
            :func:`.openai_script.scripted` responder works too. Default
            :func:`chat_echo_responder`. ``None`` from it: an empty ``stop`` reply.
        api_key: the bearer token accepted (``None``: any non-empty token).
        models: known model ids (``None``: any; otherwise 404 ``model_not_found``).
        tokens_per_s: pieces per second after the first (default 200; 0 = no pacing).
        first_token_latency_s: pause after the headers, before the first chunk (non-streaming:
            before the body).
        check_violations: leaving the block raises if :attr:`violations` is not empty.

    Failure knobs, read live (set them at any time):
        fail_status: answer with this status (429, 500, 503 …) and OpenAI's error body;
            ``fail_times``: only that many requests, then reset (``None``: until cleared).
        malformed_after: after N chunk events, send one line that is not JSON, then go on.
        hang_after: after N chunk events, stop sending and keep the connection open
            (N = all chunks: everything but ``data: [DONE]``).
        abort_after: after N chunk events, drop the connection.
        A non-streaming request treats any of the three as "the body": truncated JSON, never
        sent, or cut in half.

    Observability: :attr:`requests` (:class:`ChatRequest`), :attr:`violations`,
    :attr:`cancelled` (requests whose client left mid-response), :attr:`internal_errors`,
    :meth:`wait_for_request`.
    """

    _violations_are = "invalid chat requests"

    def __init__(
        self,
        responder: ChatResponder | ScriptedResponder | None = None,
        *,
        api_key: str | None = None,
        models: Collection[str] | None = None,
        tokens_per_s: float = 200.0,
        first_token_latency_s: float = 0.0,
        fail_status: int | None = None,
        fail_times: int | None = None,
        malformed_after: int | None = None,
        hang_after: int | None = None,
        abort_after: int | None = None,
        check_violations: bool = True,
    ) -> None:
        super().__init__(
            fail_status=fail_status, fail_times=fail_times, check_violations=check_violations
        )
        self.responder: ChatResponder | ScriptedResponder = responder or chat_echo_responder
        self.api_key = api_key
        self.models = set(models) if models is not None else None
        self.tokens_per_s = tokens_per_s
        self.first_token_latency_s = first_token_latency_s
        self.malformed_after = malformed_after
        self.hang_after = hang_after
        self.abort_after = abort_after

        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` — the SDK's ``base_url``."""
        return self._http_url("/v1")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._complete, methods=["POST"])])

    def new_id(self, prefix: str) -> str:
        return f"{prefix}fake{next(self._ids):06d}"

    # ------------------------------------------------------------------ requests

    async def _complete(self, request: Request) -> Response:
        body = await read_body(request)
        record = ChatRequest(body=body, headers=dict(request.headers), at=time.monotonic())
        refusal = self._admit(record)
        if refusal is not None:
            return refusal
        try:
            reply = self._ask(copy.deepcopy(body["messages"]))
        except Exception as exc:
            self.internal_errors.append(exc)
            record.status, record.outcome = 500, "failed"
            return _error(500, f"responder failed: {exc!r}", "server_error", None, None)
        record.reply, record.status = reply, 200
        deltas, finish = plan_reply(reply, self.new_id("call_"))
        turn = _Turn(self.new_id("chatcmpl-"), int(time.time()), body, deltas, finish)
        on_end = functools.partial(self._ended, record)
        if body.get("stream") is True:
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events, paced = turn.chunks(usage)
            return LiveStream(
                self._sse(record, events, paced),
                media_type="text/event-stream",
                on_end=on_end,
                tasks=self._tasks,
            )
        document = turn.document()
        return LiveStream(
            self._whole(record, document, len(deltas)),
            media_type="application/json",
            on_end=on_end,
            tasks=self._tasks,
            headers={"content-length": str(len(document))},
        )

    def _ask(self, messages: list[Message]) -> Reply | None:
        responder = cast(Callable[[Any], "Reply | None"], self.responder)
        return responder(messages)

    def _check(self, record: ChatRequest) -> Response | None:
        scheme, _, token = record.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not token or (self.api_key is not None and token != self.api_key):
            return _error(
                401,
                f"Incorrect API key provided: {token[:3]}***. (fake)",
                "invalid_request_error",
                None,
                "invalid_api_key",
            )
        if isinstance(record.body, str):
            return _error(
                400,
                "We could not parse the JSON body of your request. (fake)",
                "invalid_request_error",
                None,
                None,
            )
        try:
            validate_chat_request(record.body)
        except ChatRequestInvalid as exc:
            if exc.violation:
                self.violations.append(ChatViolation(exc.message, exc.param, exc.code, record))
            return _error(400, exc.message, "invalid_request_error", exc.param, exc.code)
        model = record.body["model"]
        if self.models is not None and model not in self.models:
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                None,
                "model_not_found",
            )
        status = self._failure_due()
        if status is None:
            return None
        message, kind, code = _FAILURES.get(status, ("Server error (fake).", "server_error", None))
        return _error(status, message, kind, None, code)

    # ------------------------------------------------------------------ streaming

    def _fault(self, sent: int) -> Literal["hang", "abort", "malformed"] | None:
        """The live knob due before the event after ``sent`` chunk events, if any."""
        if self.abort_after is not None and sent >= self.abort_after:
            return "abort"
        if self.hang_after is not None and sent >= self.hang_after:
            return "hang"
        if self.malformed_after is not None and sent == self.malformed_after:
            return "malformed"
        return None

    async def _sse(
        self, record: ChatRequest, events: list[str], paced: int
    ) -> AsyncIterator[bytes]:
        """The SSE body: the first ``paced`` events one per token interval (the role chunk and
        the pieces), the closing chunks and ``[DONE]`` right after the last piece."""
        await asyncio.sleep(self.first_token_latency_s)
        t0 = time.monotonic()
        malformed_sent = False
        for index, event in enumerate([*events, "[DONE]"]):
            if self.tokens_per_s > 0:
                await asyncio.sleep(pace(t0, min(index, paced - 1) / self.tokens_per_s, 1.0))
            fault = self._fault(record.chunks_sent)
            if fault == "abort":
                raise StreamAbort("abort_after")
            if fault == "hang":
                await hang_forever()
            if fault == "malformed" and not malformed_sent:
                malformed_sent = True
                yield b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n'
            yield f"data: {event}\n\n".encode()
            if event != "[DONE]":
                record.chunks_sent += 1

    async def _whole(
        self, record: ChatRequest, document: bytes, tokens: int
    ) -> AsyncIterator[bytes]:
        delay = self.first_token_latency_s
        if self.tokens_per_s > 0:
            delay += tokens / self.tokens_per_s
        await asyncio.sleep(delay)
        if self.hang_after is not None:
            await hang_forever()
        if self.abort_after is not None:
            yield document[: len(document) // 2]
            raise StreamAbort("abort_after")
        if self.malformed_after is not None:
            document = document[:-1].ljust(len(document), b" ")
        record.chunks_sent = 1
        yield document


@dataclass(frozen=True)
class _Turn:
    """One assistant turn as sent: streamed chunks or one completion, checked against the SDK."""

    completion_id: str
    created: int
    body: dict[str, Any]
    deltas: list[dict[str, Any]]
    finish: str

    def _head(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": kind,
            "created": self.created,
            "model": self.body["model"],
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def _usage(self, completion_tokens: int) -> dict[str, int]:
        prompt = sum(1 + len(json.dumps(m)) // 4 for m in self.body["messages"])
        total = prompt + completion_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": total,
        }

    def chunks(self, include_usage: bool) -> tuple[list[str], int]:
        """The JSON chunks, and how many of them are paced (the role chunk and the pieces;
        the ``finish_reason`` and usage chunks follow the last piece at once)."""
        # The role comes alone with ``content: ""``, or with the tool call when there is no text.
        rest = list(self.deltas)
        first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        if rest and "tool_calls" in rest[0]:
            first = {"role": "assistant", "content": None, "refusal": None, **rest.pop(0)}
        paced = [first, *rest]
        chunks = [
            {**self._head("chat.completion.chunk"), "choices": [choice]}
            for choice in [
                *({"index": 0, "delta": d, "logprobs": None, "finish_reason": None} for d in paced),
                {"index": 0, "delta": {}, "logprobs": None, "finish_reason": self.finish},
            ]
        ]
        if include_usage:
            chunks = [{**c, "usage": None} for c in chunks]
            usage = self._usage(len(self.deltas) + 1)
            chunks.append({**self._head("chat.completion.chunk"), "choices": [], "usage": usage})
        for chunk in chunks:
            _check_sent(ChatCompletionChunk, chunk)
        return [json.dumps(chunk) for chunk in chunks], len(paced)

    def document(self) -> bytes:
        """The non-streaming ``ChatCompletion`` carrying the same text and tool call."""
        content = "".join(d.get("content", "") for d in self.deltas)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content if content or self.finish == "stop" else None,
            "refusal": None,
            "annotations": [],
        }
        calls = [d["tool_calls"][0] for d in self.deltas if "tool_calls" in d]
        if calls:
            head, *pieces = calls
            function = {
                "name": head["function"]["name"],
                "arguments": "".join(p["function"]["arguments"] for p in pieces),
            }
            message["tool_calls"] = [{"id": head["id"], "type": "function", "function": function}]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish}
        document = {
            **self._head("chat.completion"),
            "choices": [choice],
            "usage": self._usage(len(self.deltas)),
        }
        _check_sent(ChatCompletion, document)
        return json.dumps(document).encode()


def _check_sent(model: type[pydantic.BaseModel], data: dict[str, Any]) -> None:
    """Validate what the fake sends; the SDK's models accept unknown keys, so check those too."""
    parsed = model.model_validate(data)
    extra = next(_undeclared(parsed, ""), None)
    if extra is not None:
        raise AssertionError(f"the fake built an undeclared key {extra!r}")


def _undeclared(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, pydantic.BaseModel):
        for key in value.model_extra or {}:
            yield f"{path}.{key}"
        for name in type(value).model_fields:
            yield from _undeclared(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _undeclared(item, f"{path}[{index}]")
