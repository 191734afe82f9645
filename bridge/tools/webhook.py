"""Run an agent's tool by POSTing the call to its webhook, signed, and hand the model the reply.

Request: ``POST <ToolSpec.webhook>`` with the JSON body::

    {"call_id": ..., "agent": ..., "tool_call_id": ..., "tool": ..., "arguments": {...},
     "context": {...}}

and the headers ``Content-Type: application/json``, ``User-Agent: callbridge/<version>`` and,
when the agent has a tool secret, ``X-Callbridge-Timestamp`` / ``X-Callbridge-Signature`` (see
:mod:`bridge.tools.signing`) over those exact body bytes.

Reply: a 2xx with ``application/json`` (any JSON value) is handed to the model re-serialized
compactly; ``text/plain`` becomes ``{"result": "<text>"}``; an empty 2xx body becomes
``{"result": "ok"}``. Everything else — unknown tool, no webhook, timeout (``ToolSpec.timeout_s``
bounds the whole exchange), connection error, non-2xx, other content types, invalid JSON, a body
over :data:`MAX_REPLY_BYTES` — is a failed :class:`ToolOutcome` whose ``output`` is
``{"error": "<message>"}`` for the model. :meth:`ToolDispatcher.run` never raises, except
``asyncio.CancelledError`` when its task is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from bridge import __version__
from bridge.agents.model import Agent, ToolSpec
from bridge.errors import ToolError
from bridge.tools.signing import signed_headers

logger = logging.getLogger(__name__)

MAX_REPLY_BYTES = 64 * 1024
"""Replies larger than this are refused: they would swamp the model's context."""

USER_AGENT = f"callbridge/{__version__}"


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What a tool run produced: ``output`` is the JSON text handed back to the model."""

    output: str
    ok: bool
    duration_ms: float
    status_code: int | None = None
    """The webhook's HTTP status, when it answered at all."""
    error: str | None = None
    """Why the run failed (same text as in ``output``); ``None`` when ``ok``."""


class _ReplyError(ToolError):
    """The webhook answered, but not usefully; keeps the HTTP status for the outcome."""

    def __init__(self, message: str, status_code: int, *, retryable: bool = False) -> None:
        super().__init__(message, retryable=retryable)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class _Reply:
    status_code: int
    content_type: str
    body: bytes


class ToolDispatcher:
    """Runs tool calls against their webhooks with a shared ``httpx.AsyncClient``.

    The client is the caller's to open and close. ``clock`` gives the signature timestamp and
    ``monotonic`` measures durations; tests inject both.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._clock = clock
        self._monotonic = monotonic
        self.local_base: str | None = None
        """Where this server listens (``http://127.0.0.1:8080``): webhooks given as a path
        (``/demo/tools/…``) go to this server itself."""

    @property
    def client(self) -> httpx.AsyncClient:
        """The server's shared HTTP client (carrier APIs use it too)."""
        return self._client

    async def run(
        self,
        *,
        agent: Agent,
        call_id: str,
        tool_call_id: str,
        name: str,
        arguments: Mapping[str, Any],
        context: Mapping[str, str] | None = None,
    ) -> ToolOutcome:
        """Run tool ``name`` for this call; failures come back as ``ok=False``, never raised."""
        started = self._monotonic()
        ids = {"call_id": call_id, "tool_call_id": tool_call_id, "name": name}
        try:
            spec = _find_tool(agent, name)
            body = _encode(
                {
                    "call_id": call_id,
                    "agent": agent.name,
                    "tool_call_id": tool_call_id,
                    "tool": name,
                    "arguments": arguments,
                    "context": dict(context or {}),
                }
            )
            reply = await self._post(spec, agent.tool_secret, body)
            output = interpret_reply(reply.status_code, reply.content_type, reply.body)
        except ToolError as exc:
            status = exc.status_code if isinstance(exc, _ReplyError) else None
            return self._failed(started, exc.message, status_code=status, **ids)
        except Exception:
            # A bug or an exotic client failure must not take the call down with it.
            logger.exception(
                "call %s: tool %s (%s) crashed",
                call_id,
                name,
                tool_call_id,
                extra={"call_id": call_id},
            )
            return self._failed(started, "internal error", status_code=None, **ids)
        outcome = ToolOutcome(output, True, self._elapsed_ms(started), reply.status_code)
        logger.info(
            "call %s: tool %s (%s) -> HTTP %d in %.0f ms",
            call_id,
            name,
            tool_call_id,
            reply.status_code,
            outcome.duration_ms,
            extra={"call_id": call_id},
        )
        return outcome

    def _failed(
        self,
        started: float,
        message: str,
        *,
        call_id: str,
        tool_call_id: str,
        name: str,
        status_code: int | None,
    ) -> ToolOutcome:
        error = f"tool '{name}': {message}"
        outcome = ToolOutcome(
            output=json.dumps({"error": error}, ensure_ascii=False),
            ok=False,
            duration_ms=self._elapsed_ms(started),
            status_code=status_code,
            error=error,
        )
        logger.warning(
            "call %s: tool %s (%s) failed after %.0f ms: %s",
            call_id,
            name,
            tool_call_id,
            outcome.duration_ms,
            message,
            extra={"call_id": call_id},
        )
        return outcome

    async def _post(self, spec: ToolSpec, secret: str | None, body: bytes) -> _Reply:
        """POST ``body`` within ``spec.timeout_s``; transport failures become ``ToolError``."""
        if spec.webhook is None:
            raise ToolError("no webhook is configured for this tool")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/plain;q=0.9",
            "User-Agent": USER_AGENT,
            # The size cap counts decoded bytes; asking for no compression keeps it honest.
            "Accept-Encoding": "identity",
        }
        if secret:
            headers |= signed_headers(secret, int(self._clock()), body)
        try:
            async with asyncio.timeout(spec.timeout_s):
                return await self._exchange(self._url(spec.webhook), headers, body, spec.timeout_s)
        except (TimeoutError, httpx.TimeoutException):
            raise ToolError(f"no reply within {spec.timeout_s:g} s", retryable=True) from None
        except httpx.ConnectError:
            raise ToolError("could not connect to the webhook", retryable=True) from None
        except httpx.HTTPError as exc:
            # The URL may carry credentials, so name the failure, never the request.
            raise ToolError(f"webhook request failed ({type(exc).__name__})") from None

    def _url(self, webhook: str) -> str:
        if not webhook.startswith("/"):
            return webhook
        if self.local_base is None:
            raise ToolError("a local webhook path needs the server's own address")
        return self.local_base + webhook

    async def _exchange(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float
    ) -> _Reply:
        request = self._client.build_request(
            "POST", url, content=body, headers=headers, timeout=timeout_s
        )
        response = await self._client.send(request, stream=True)
        chunks: list[bytes] = []
        try:
            if not response.is_success:
                return _Reply(response.status_code, "", b"")  # the body is not needed
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared[:12]) > MAX_REPLY_BYTES:
                raise _oversized(response.status_code)
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise _oversized(response.status_code)
                chunks.append(chunk)
        finally:
            await response.aclose()
        content_type = response.headers.get("Content-Type", "")
        return _Reply(response.status_code, content_type, b"".join(chunks))

    def _elapsed_ms(self, started: float) -> float:
        return (self._monotonic() - started) * 1000.0


def local_base_url(server: Any) -> str | None:
    """``http://host:port`` of this server from an ASGI scope's ``server`` entry."""
    if not server:
        return None
    host, port = server[0], server[1]
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def interpret_reply(status_code: int, content_type: str, body: bytes) -> str:
    """The model-facing output for a webhook reply, or ``ToolError`` saying what is wrong."""
    if not 200 <= status_code < 300:
        raise _ReplyError(
            f"webhook answered HTTP {status_code}", status_code, retryable=status_code >= 500
        )
    if not body.strip():
        return '{"result":"ok"}'
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            value = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise _ReplyError("webhook reply is not valid JSON", status_code) from None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if media_type == "text/plain":
        text = body.decode(_charset(params), errors="replace")
        return json.dumps({"result": text}, ensure_ascii=False, separators=(",", ":"))
    shown = media_type or "none"
    raise _ReplyError(
        f"webhook reply has content type {shown}; expected JSON or plain text", status_code
    )


def _find_tool(agent: Agent, name: str) -> ToolSpec:
    for spec in agent.tools:
        if spec.name == name:
            return spec
    raise ToolError(f"unknown tool for agent '{agent.name}'")


def _encode(payload: Mapping[str, Any]) -> bytes:
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise ToolError("arguments cannot be sent as JSON") from None
    return text.encode("utf-8")


def _oversized(status_code: int) -> ToolError:
    return _ReplyError(f"webhook reply is larger than {MAX_REPLY_BYTES} bytes", status_code)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _charset(params: str) -> str:
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            try:
                "".encode(charset)
            except LookupError:
                return "utf-8"
            return charset
    return "utf-8"
