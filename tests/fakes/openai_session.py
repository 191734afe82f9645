"""One fake OpenAI Realtime (GA) session: the state behind one websocket connection.

Client events arrive already parsed; :class:`RealtimeSession` validates them, updates the
session config, runs the scripted VAD over appended audio, keeps the conversation, and starts
responses (streamed by :mod:`.openai_response`). Everything it sends goes through
:meth:`RealtimeSession.send`, which validates the event against the SDK's server models first.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .common import Tasks
from .openai_audio import AudioFormat, recognize_off_loop
from .openai_config import check_update, default_session_config, merge_session
from .openai_input import InputBuffer
from .openai_response import Trigger, Turn, run_turn
from .openai_validate import EventInvalid, validate_client_event, validate_server_event

if TYPE_CHECKING:
    from .openai_realtime import FakeRealtimeServer

__all__ = ["Conversation", "RealtimeSession", "Truncation", "Violation"]

Event = dict[str, Any]

_MIN_COMMIT_MS = 100


@dataclass(frozen=True)
class Violation:
    """A client event the real server would have rejected (the fake answered with ``error``)."""

    code: str
    message: str
    param: str | None
    event: Any


class Truncation(NamedTuple):
    """An accepted ``conversation.item.truncate`` and when it arrived (``time.monotonic()``)."""

    item_id: str
    audio_end_ms: int
    at: float


@dataclass
class Conversation:
    """Items by id, in order; assistant audio duration sent per item."""

    items: dict[str, Event] = field(default_factory=dict)
    audio_ms: dict[str, float] = field(default_factory=dict)
    call_names: dict[str, str] = field(default_factory=dict)

    @property
    def last_id(self) -> str | None:
        return next(reversed(self.items), None)


class RealtimeSession:
    """State and handlers of one connection; :meth:`run` drives it until the socket closes."""

    def __init__(self, fake: FakeRealtimeServer, ws: ServerConnection, model: str) -> None:
        self.fake = fake
        self.ws = ws
        self.id = fake.new_id("sess")
        self.conversation_id = fake.new_id("conv")
        self.config = default_session_config(self.id, model)
        self.conversation = Conversation()
        self.turn: Turn | None = None
        self.pending: Trigger | None = None
        self.audio_produced = False
        self.received: list[tuple[float, Event]] = []
        self.sent: list[tuple[float, Event]] = []
        self.input = InputBuffer(threshold_rms=fake.vad_threshold_rms, speech_ms=fake.vad_speech_ms)
        self._configure_input()
        self._speech_item: str | None = None
        self._tasks = Tasks(fake.internal_errors)
        self._handlers: dict[str, Callable[[Event], Awaitable[None]]] = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.truncate": self._on_truncate,
            "conversation.item.delete": self._on_item_delete,
            "conversation.item.retrieve": self._on_item_retrieve,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
            "output_audio_buffer.clear": self._on_output_audio_buffer_clear,
        }

    # ------------------------------------------------------------------ plumbing

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        td: dict[str, Any] | None = self.config["audio"]["input"]["turn_detection"]
        return td

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro)

    async def send(self, event: Event) -> None:
        """Validate (a failure is a bug in the fake: raises) and send one server event."""
        event = {"event_id": self.fake.new_id("event"), **copy.deepcopy(event)}
        try:
            validate_server_event(event)
        except EventInvalid as exc:
            raise AssertionError(f"fake emitted an invalid {event['type']}: {exc}") from exc
        try:
            await self.ws.send(json.dumps(event))
        except ConnectionClosed:
            return
        now = time.monotonic()
        self.sent.append((now, event))
        self.fake.record_sent(now, event)

    async def error(
        self,
        code: str,
        message: str,
        param: str | None = None,
        cause: Any = None,
        *,
        violation: bool = True,
    ) -> None:
        """Send an ``error`` event (the session stays open) and, usually, log a violation."""
        client_event_id = cause.get("event_id") if isinstance(cause, dict) else None
        body: Event = {"type": "invalid_request_error", "code": code, "message": message}
        body["param"] = param
        body["event_id"] = client_event_id
        if violation:
            self.fake.violations.append(Violation(code, message, param, cause))
        await self.send({"type": "error", "error": body})

    async def run(self) -> None:
        await self.send({"type": "session.created", "session": self.config})
        await self._tasks.run_until_closed(self.ws, self._dispatch)

    async def _dispatch(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self.error("invalid_value", "Binary frames are not supported.", None, message)
            return
        try:
            data = json.loads(message)
        except json.JSONDecodeError as exc:
            await self.error("invalid_json", f"Invalid JSON: {exc}", None, message)
            return
        try:
            validate_client_event(data)
        except EventInvalid as exc:
            await self.error(exc.code, exc.message, exc.param, data)
            return
        now = time.monotonic()
        self.received.append((now, data))
        self.fake.record_received(now, data)
        await self._handlers[data["type"]](data)

    # ------------------------------------------------------------------ session config

    def _configure_input(self) -> None:
        audio_in = self.config["audio"]["input"]
        self.input.configure(
            AudioFormat.from_config(audio_in["format"]), audio_in["turn_detection"]
        )

    async def _on_session_update(self, event: Event) -> None:
        update: dict[str, Any] = event["session"]
        problem = check_update(self.config, update, audio_produced=self.audio_produced)
        if problem is not None:
            await self.error(*problem, event)
            return
        before = self.config["audio"]["input"]
        self.config = merge_session(self.config, update)
        after = self.config["audio"]["input"]
        if (after["format"], after["turn_detection"]) != (
            before["format"],
            before["turn_detection"],
        ):
            self._configure_input()  # other updates (even mid-utterance) keep the VAD state
        await self.send({"type": "session.updated", "session": self.config})

    # ------------------------------------------------------------------ input audio

    async def _on_append(self, event: Event) -> None:
        try:
            wire = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError):
            await self.error("invalid_value", "audio is not valid base64.", "audio", event)
            return
        for vad_event in self.input.append(wire):
            if vad_event.kind == "started":
                await self._speech_started(vad_event.ms)
            else:
                await self._speech_stopped(vad_event.ms)

    async def _speech_started(self, start_ms: int) -> None:
        self._speech_item = self.fake.new_id("item")
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": start_ms,
                "item_id": self._speech_item,
            }
        )
        self.fake.speech_started_at.append(time.monotonic())
        td = self.turn_detection or {}
        if self.turn is not None and td.get("interrupt_response", True):
            await self.cancel_turn("turn_detected")

    async def _speech_stopped(self, end_ms: int) -> None:
        item_id = self._speech_item or self.fake.new_id("item")
        self._speech_item = None
        await self.send(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": end_ms,
                "item_id": item_id,
            }
        )
        await self._commit(item_id, self.input.take_utterance(end_ms))
        td = self.turn_detection or {}
        if td.get("create_response", True) and self.turn is None:
            self.start_turn(self.take_pending(), auto=True)

    async def _on_commit(self, event: Event) -> None:
        held_ms = self.input.duration_ms
        if held_ms < _MIN_COMMIT_MS:
            await self.error(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least "
                f"{_MIN_COMMIT_MS}ms of audio, but buffer only has {held_ms:.2f}ms "
                f"of audio.",
                None,
                event,
            )
            return
        pcm = self.input.take_all()
        item_id = self._speech_item or self.fake.new_id("item")
        self._speech_item = None
        await self._commit(item_id, pcm)

    async def _commit(self, item_id: str, pcm: bytes) -> None:
        previous = self.conversation.last_id
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": previous,
            }
        )
        item: Event = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        await self._add_item(item, previous)
        rate = self.input.format.rate
        task = self.spawn(self._transcribe(item, pcm, rate))
        self.pending = Trigger(kind="audio", item_id=item_id, transcript=task)

    async def _transcribe(self, item: Event, pcm: bytes, rate: int) -> str:
        phrases = self.fake.transcription_phrases
        text = await recognize_off_loop(pcm, rate, phrases)
        item["content"][0]["transcript"] = text
        if self.config["audio"]["input"]["transcription"] is not None:
            seconds = len(pcm) / 2 / rate
            audio_tokens = max(1, math.ceil(seconds * 10))
            text_tokens = len(text.split())
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item["id"],
                    "content_index": 0,
                    "transcript": text,
                    "usage": {
                        "type": "tokens",
                        "input_tokens": audio_tokens,
                        "output_tokens": text_tokens,
                        "total_tokens": audio_tokens + text_tokens,
                        "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
                    },
                }
            )
        return text

    async def _on_clear(self, event: Event) -> None:
        self.input.clear()
        self._speech_item = None
        await self.send({"type": "input_audio_buffer.cleared"})

    # ------------------------------------------------------------------ conversation

    async def _add_item(self, item: Event, previous: str | None) -> None:
        self.conversation.items[item["id"]] = item
        await self.send(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": item}
        )
        await self.send(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
        )

    async def _on_item_create(self, event: Event) -> None:
        item: Event = copy.deepcopy(event["item"])
        previous = event.get("previous_item_id")
        if previous is not None and previous not in self.conversation.items:
            await self.error(
                "invalid_value",
                f"Previous item with id '{previous}' not found.",
                "previous_item_id",
                event,
            )
            return
        item_id = item.get("id") or self.fake.new_id("item")
        if item_id in self.conversation.items:
            await self.error(
                "invalid_value", f"Item with id '{item_id}' already exists.", "item.id", event
            )
            return
        trigger: Trigger | None = None
        if item["type"] == "function_call_output":
            name = self.conversation.call_names.get(item["call_id"])
            if name is None:
                await self.error(
                    "invalid_value",
                    f"No function call with call_id '{item['call_id']}' in this conversation.",
                    "item.call_id",
                    event,
                )
                return
            trigger = Trigger(
                kind="function_call_output",
                item_id=item_id,
                call_id=item["call_id"],
                tool_name=name,
                tool_output=item["output"],
            )
        elif item["type"] == "message" and item["role"] == "user":
            texts = [c.get("text") or "" for c in item["content"] if c.get("type") == "input_text"]
            if texts:
                text = " ".join(texts)
                self.fake.user_texts.append(text)
                trigger = Trigger(kind="text", item_id=item_id, text=text)
        item.update(id=item_id, object="realtime.item", status="completed")
        await self._add_item(item, previous if previous is not None else self.conversation.last_id)
        if trigger is not None:
            self.pending = trigger

    async def _item_or_error(self, event: Event) -> Event | None:
        item = self.conversation.items.get(event["item_id"])
        if item is None:
            await self.error(
                "invalid_value",
                f"Item with item_id '{event['item_id']}' not found.",
                "item_id",
                event,
            )
        return item

    async def _on_truncate(self, event: Event) -> None:
        item = await self._item_or_error(event)
        if item is None:
            return
        is_audio = (
            item.get("role") == "assistant"
            and item.get("content")
            and item["content"][0].get("type") == "output_audio"
        )
        if not is_audio:
            await self.error(
                "invalid_value", "Only assistant audio items can be truncated.", "item_id", event
            )
            return
        if event["content_index"] != 0:
            await self.error("invalid_value", "content_index must be 0.", "content_index", event)
            return
        sent_ms = self.conversation.audio_ms.get(item["id"], 0.0)
        end_ms = event["audio_end_ms"]
        if end_ms < 0 or end_ms > math.ceil(sent_ms):
            await self.error(
                "invalid_value",
                f"Audio content of {math.ceil(sent_ms)}ms is shorter than {end_ms}ms.",
                "audio_end_ms",
                event,
            )
            return
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item["id"],
                "content_index": 0,
                "audio_end_ms": end_ms,
            }
        )
        self.fake.truncations.append(Truncation(item["id"], end_ms, time.monotonic()))

    async def _on_item_delete(self, event: Event) -> None:
        if await self._item_or_error(event) is None:
            return
        del self.conversation.items[event["item_id"]]
        await self.send({"type": "conversation.item.deleted", "item_id": event["item_id"]})

    async def _on_item_retrieve(self, event: Event) -> None:
        item = await self._item_or_error(event)
        if item is not None:
            await self.send({"type": "conversation.item.retrieved", "item": item})

    async def _on_output_audio_buffer_clear(self, event: Event) -> None:
        await self.error(
            "invalid_value",
            "output_audio_buffer.clear is only supported for WebRTC and SIP sessions; "
            "over a WebSocket use response.cancel and conversation.item.truncate.",
            "type",
            event,
        )

    # ------------------------------------------------------------------ responses

    def take_pending(self) -> Trigger:
        trigger = self.pending or Trigger(kind="response.create")
        self.pending = None
        return trigger

    def start_turn(self, trigger: Trigger, *, auto: bool, params: Event | None = None) -> Turn:
        turn = Turn(trigger=trigger, auto=auto, params=params or {})
        self.turn = turn
        turn.task = self.spawn(run_turn(self, turn))
        return turn

    async def _on_response_create(self, event: Event) -> None:
        if self.turn is not None:
            await self.error(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: "
                f"{self.turn.response_id or '(starting)'}. Wait until the response is finished "
                "before creating a new one.",
                None,
                event,
            )
            return
        self.start_turn(self.take_pending(), auto=False, params=event.get("response") or {})

    async def _on_response_cancel(self, event: Event) -> None:
        wanted = event.get("response_id")
        turn = self.turn
        if turn is None or (wanted is not None and wanted != turn.response_id):
            await self.error(
                "response_cancel_not_active",
                "Cancellation failed: no active response found.",
                None,
                event,
                violation=False,
            )
            return
        await self.cancel_turn("client_cancelled")

    async def cancel_turn(self, reason: str) -> None:
        """Stop the current turn; returns once its closing events have been sent."""
        turn = self.turn
        if turn is None or turn.task is None:
            return
        turn.cancel(reason)
        if turn.response_id is None and reason == "turn_detected":
            turn.task.cancel()  # not started yet: the new utterance simply replaces it
        await asyncio.wait([turn.task])
