"""Any OpenAI-compatible chat-completions endpoint as the pipeline's language model.

The official ``openai`` client does the HTTP and SSE work (``base_url`` points it at OpenAI, a
self-hosted vLLM / llama.cpp / Ollama server, or a test fake). Replies stream; tool calls are
assembled from their streamed pieces and handed over whole, after the text.
:meth:`OpenAIChatModel.complete_json` asks for one structured (JSON schema) reply instead: the
post-call summary (:mod:`bridge.postcall`) uses the same client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from bridge.engines.pipeline.parts import LanguageModel, Message, TextDelta, ToolCall, ToolSchema
from bridge.errors import EngineUnavailable


class OpenAIChatModel(LanguageModel):
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        temperature: float | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        from openai import AsyncOpenAI

        # Local servers often need no key; the client insists on one.
        self._client = AsyncOpenAI(
            api_key=api_key or "none", base_url=base_url, max_retries=1, timeout=timeout_s
        )
        self.model = model
        self.temperature = temperature

    async def respond(
        self, messages: Sequence[Message], tools: Sequence[ToolSchema]
    ) -> AsyncIterator[TextDelta | ToolCall]:
        import openai

        request: dict[str, Any] = {"model": self.model, "messages": list(messages), "stream": True}
        if tools:
            request["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters),
                    },
                }
                for t in tools
            ]
        if self.temperature is not None:
            request["temperature"] = self.temperature
        calls: dict[int, list[str]] = {}
        try:
            stream = await self._client.chat.completions.create(**request)
            try:
                async for chunk in stream:
                    if not chunk.choices:
                        continue
                    delta = chunk.choices[0].delta
                    if delta.content:
                        yield TextDelta(delta.content)
                    for piece in delta.tool_calls or ():
                        call = calls.setdefault(piece.index, ["", "", ""])
                        if piece.id:
                            call[0] = piece.id
                        if piece.function is not None:
                            call[1] += piece.function.name or ""
                            call[2] += piece.function.arguments or ""
            finally:
                await stream.close()
        except openai.APIError as exc:
            raise EngineUnavailable(f"language model: {type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # the SDK lets a malformed stream's JSONDecodeError through
            raise EngineUnavailable(f"language model sent malformed data: {exc}") from None
        for index in sorted(calls):
            call_id, name, arguments = calls[index]
            yield ToolCall(call_id or f"call_{index}", name, arguments or "{}")

    async def complete_json(
        self, messages: Sequence[Message], *, name: str, schema: Mapping[str, Any]
    ) -> str:
        """One non-streamed reply constrained to JSON ``schema`` (structured outputs, strict):
        its text. Failures are :class:`~bridge.errors.EngineUnavailable`."""
        import openai

        request: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": dict(schema), "strict": True},
            },
        }
        if self.temperature is not None:
            request["temperature"] = self.temperature
        try:
            completion = await self._client.chat.completions.create(**request)
        except openai.APIError as exc:
            raise EngineUnavailable(f"language model: {type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # a body that is not JSON
            raise EngineUnavailable(f"language model sent malformed data: {exc}") from None
        content = completion.choices[0].message.content if completion.choices else None
        if not isinstance(content, str):
            raise EngineUnavailable("language model: the reply has no content")
        return content

    async def close(self) -> None:
        await self._client.close()
