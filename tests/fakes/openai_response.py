"""Responses of the fake OpenAI Realtime server: one scripted reply streamed in GA order.

``response.created`` → ``rate_limits.updated`` → ``response.output_item.added`` →
``conversation.item.added`` → ``response.content_part.added`` → audio and transcript deltas
(paced on an absolute schedule, faster than real time) → the ``.done`` events →
``response.done``. A cancelled response (barge-in or ``response.cancel``) stops its deltas
and closes with the same ``.done`` events, the item ``incomplete`` and the response
``cancelled``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .common import sleep_until
from .openai_audio import AudioFormat
from .openai_script import FakeTurn, Reply, TurnKind, quoted_text

if TYPE_CHECKING:
    from .openai_session import RealtimeSession

__all__ = ["Trigger", "Turn", "run_turn"]

Event = dict[str, Any]
_ARGUMENT_CHUNK = 24  # characters per response.function_call_arguments.delta
_RATE_LIMITS = [
    {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
    {"name": "tokens", "limit": 40000, "remaining": 38000, "reset_seconds": 3.0},
]


@dataclass(frozen=True)
class Trigger:
    """The conversation input a response answers (see :class:`FakeTurn`)."""

    kind: TurnKind
    item_id: str | None = None
    transcript: asyncio.Task[str] | None = None
    text: str | None = None
    call_id: str | None = None
    tool_name: str | None = None
    tool_output: str | None = None


@dataclass(eq=False)
class Turn:
    """One response from trigger to ``response.done``; at most one per session at a time."""

    trigger: Trigger
    auto: bool
    params: Event
    task: asyncio.Task[None] | None = None
    response_id: str | None = None
    cancel_reason: str | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
            self._wake.set()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until loop time ``deadline``, or less if the turn is cancelled meanwhile."""
        await sleep_until(self._wake, deadline)


async def run_turn(session: RealtimeSession, turn: Turn) -> None:
    """Ask the responder (after recognition finishes) and stream its reply."""
    fake = session.fake
    try:
        trigger = turn.trigger
        transcript = await asyncio.shield(trigger.transcript) if trigger.transcript else None
        instructions = turn.params.get("instructions")
        fake_turn = FakeTurn(
            kind=trigger.kind,
            index=len(fake.turns),
            transcript=transcript,
            text=trigger.text,
            call_id=trigger.call_id,
            tool_name=trigger.tool_name,
            tool_output=trigger.tool_output,
            instructions=instructions,
            item_id=trigger.item_id,
        )
        fake.turns.append(fake_turn)
        if fake.response_latency_s > 0:
            await turn.sleep_until(asyncio.get_running_loop().time() + fake.response_latency_s)
        quoted = quoted_text(instructions)
        reply = Reply.say(quoted) if quoted else fake.responder(fake_turn)
        if reply is None and turn.auto:
            return
        await _respond(session, turn, reply)
    finally:
        if session.turn is turn:
            session.turn = None


async def _respond(session: RealtimeSession, turn: Turn, reply: Reply | None) -> None:
    params = turn.params
    out_params = (params.get("audio") or {}).get("output") or {}
    fmt_config = out_params.get("format") or session.config["audio"]["output"]["format"]
    fmt = AudioFormat.from_config(fmt_config)
    in_conversation = params.get("conversation", "auto") != "none"
    response: Event = {
        "id": session.fake.new_id("resp"),
        "object": "realtime.response",
        "status": "in_progress",
        "status_details": None,
        "output": [],
        "conversation_id": session.conversation_id if in_conversation else None,
        "output_modalities": params.get("output_modalities") or session.config["output_modalities"],
        "max_output_tokens": params.get("max_output_tokens") or session.config["max_output_tokens"],
        "audio": {
            "output": {
                "format": fmt_config,
                "voice": out_params.get("voice") or session.config["audio"]["output"]["voice"],
            }
        },
        "usage": None,
        "metadata": params.get("metadata"),
    }
    turn.response_id = response["id"]
    await session.send({"type": "response.created", "response": response})
    await session.send({"type": "rate_limits.updated", "rate_limits": _RATE_LIMITS})
    stream = _Stream(session, turn, response["id"], in_conversation)
    if reply is not None and turn.cancel_reason is None:
        if reply.kind == "call":
            response["output"].append(await stream.function_call(reply))
        else:
            audio = "audio" in response["output_modalities"]
            response["output"].append(await stream.message(reply.text, fmt if audio else None))
            if reply.name and turn.cancel_reason is None:  # said something, then calls a tool
                response["output"].append(await stream.function_call(reply))
    if turn.cancel_reason is not None:
        response["status"] = "cancelled"
        response["status_details"] = {"type": "cancelled", "reason": turn.cancel_reason}
    else:
        response["status"] = "completed"
    response["usage"] = stream.usage()
    await session.send({"type": "response.done", "response": response})


class _Stream:
    """Emits the output item of one response and counts what it sent."""

    def __init__(
        self, session: RealtimeSession, turn: Turn, response_id: str, in_conversation: bool
    ) -> None:
        self.session = session
        self.fake = session.fake
        self.turn = turn
        self.response_id = response_id
        self.in_conversation = in_conversation
        self.audio_ms = 0.0
        self.words = 0

    def _ids(self, item_id: str) -> Event:
        return {
            "response_id": self.response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
        }

    async def _added(self, item: Event) -> str | None:
        previous = self.session.conversation.last_id
        await self.session.send(
            {
                "type": "response.output_item.added",
                "response_id": self.response_id,
                "output_index": 0,
                "item": item,
            }
        )
        if self.in_conversation:
            self.session.conversation.items[item["id"]] = item
            await self.session.send(
                {"type": "conversation.item.added", "previous_item_id": previous, "item": item}
            )
        return previous

    async def _done(self, item: Event, previous: str | None) -> None:
        await self.session.send(
            {
                "type": "response.output_item.done",
                "response_id": self.response_id,
                "output_index": 0,
                "item": item,
            }
        )
        if self.in_conversation:
            await self.session.send(
                {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
            )

    async def message(self, text: str, fmt: AudioFormat | None) -> Event:
        """An assistant message: audio + transcript (``fmt`` given) or text only."""
        item_id = self.fake.new_id("item")
        item: Event = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        previous = await self._added(item)
        part: Event = {"type": "audio", "transcript": ""} if fmt else {"type": "text", "text": ""}
        await self.session.send(
            {"type": "response.content_part.added", **self._ids(item_id), "part": part}
        )
        words = re.findall(r"\S+\s*", " ".join(text.split()))
        if fmt is not None:
            said = await self._audio(item_id, fmt, words)
            await self.session.send({"type": "response.output_audio.done", **self._ids(item_id)})
            await self.session.send(
                {
                    "type": "response.output_audio_transcript.done",
                    **self._ids(item_id),
                    "transcript": said,
                }
            )
            part = {"type": "audio", "transcript": said}
            content: Event = {"type": "output_audio", "transcript": said}
        else:
            said = await self._text(item_id, words)
            await self.session.send(
                {"type": "response.output_text.done", **self._ids(item_id), "text": said}
            )
            part = {"type": "text", "text": said}
            content = {"type": "output_text", "text": said}
        await self.session.send(
            {"type": "response.content_part.done", **self._ids(item_id), "part": part}
        )
        cancelled = self.turn.cancel_reason is not None
        item.update(status="incomplete" if cancelled else "completed", content=[content])
        await self._done(item, previous)
        return item

    async def _audio(self, item_id: str, fmt: AudioFormat, words: list[str]) -> str:
        audio = fmt.speak("".join(words)) if words else b""
        chunk = fmt.bytes_per_ms * self.fake.chunk_ms
        factor = self.fake.realtime_factor
        start = asyncio.get_running_loop().time()
        sent = 0
        spoken = 0
        for index, offset in enumerate(range(0, len(audio), chunk)):
            if factor > 0:
                await self.turn.sleep_until(start + index * self.fake.chunk_ms / 1000 / factor)
            else:
                await asyncio.sleep(0)
            if self.turn.cancel_reason is not None:
                break
            piece = audio[offset : offset + chunk]
            await self.session.send(
                {
                    "type": "response.output_audio.delta",
                    **self._ids(item_id),
                    "delta": base64.b64encode(piece).decode(),
                }
            )
            sent += len(piece)
            self.audio_ms = fmt.duration_ms(sent)
            self.session.conversation.audio_ms[item_id] = self.audio_ms
            self.session.audio_produced = True
            self.fake.items[item_id] = sent
            due = math.ceil(len(words) * sent / len(audio))
            while spoken < due:
                await self.session.send(
                    {
                        "type": "response.output_audio_transcript.delta",
                        **self._ids(item_id),
                        "delta": words[spoken],
                    }
                )
                spoken += 1
        self.words = spoken
        return "".join(words[:spoken]).strip()

    async def _text(self, item_id: str, words: list[str]) -> str:
        spoken = 0
        for word in words:
            await asyncio.sleep(0)
            if self.turn.cancel_reason is not None:
                break
            await self.session.send(
                {"type": "response.output_text.delta", **self._ids(item_id), "delta": word}
            )
            spoken += 1
        self.words = spoken
        return "".join(words[:spoken]).strip()

    async def function_call(self, reply: Reply) -> Event:
        item_id = self.fake.new_id("item")
        call_id = self.fake.new_id("call")
        arguments = json.dumps(reply.arguments)
        item: Event = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": reply.name,
            "call_id": call_id,
            "arguments": "",
        }
        previous = await self._added(item)
        ids = {"response_id": self.response_id, "item_id": item_id, "output_index": 0}
        for offset in range(0, len(arguments), _ARGUMENT_CHUNK):
            await asyncio.sleep(0)
            await self.session.send(
                {
                    "type": "response.function_call_arguments.delta",
                    **ids,
                    "call_id": call_id,
                    "delta": arguments[offset : offset + _ARGUMENT_CHUNK],
                }
            )
        await self.session.send(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "call_id": call_id,
                "name": reply.name,
                "arguments": arguments,
            }
        )
        item.update(status="completed", arguments=arguments)
        self.session.conversation.call_names[call_id] = reply.name
        self.fake.function_calls.append((call_id, reply.name, dict(reply.arguments)))
        await self._done(item, previous)
        self.words = len(arguments) // 4
        return item

    def usage(self) -> Event:
        audio_tokens = math.ceil(self.audio_ms / 50)  # ≈ 20 audio tokens per second
        text_tokens = self.words
        input_text, input_audio = 120, 0
        return {
            "total_tokens": input_text + input_audio + audio_tokens + text_tokens,
            "input_tokens": input_text + input_audio,
            "output_tokens": audio_tokens + text_tokens,
            "input_token_details": {
                "text_tokens": input_text,
                "audio_tokens": input_audio,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
        }
