"""The cascaded engine: local VAD + speech-to-text → language model → text-to-speech.

One :class:`PipelineEngine` per call, built from pluggable parts (:mod:`.parts`): Deepgram or
pocketsphinx for STT, any OpenAI-compatible chat model or a scripted dialog for the LLM,
ElevenLabs or espeak-ng for TTS. It speaks the session core's vocabulary like any engine:

* **Turns.** The local VAD (:class:`~.vad.TurnDetector`) opens a caller turn (``SpeechStarted``)
  and closes it after the endpointing pause; the STT then gives the utterance's text
  (``UserTranscript``) and a response starts.
* **Responses.** The model's reply streams into a :class:`~.sentences.SentenceBuffer`; each
  sentence goes to TTS as soon as it is complete, so the caller hears the first sentence while
  the rest is still being written. Tool calls go out as ``ToolCallRequested``; the session
  brings their results back (``AddToolOutput`` + ``CreateResponse``). A fixed text — the
  greeting, an idle check, a control-plane ``say`` — is ``CreateResponse(say=…)``: spoken as
  given, no model involved, and kept in the model's history.
* **Barge-in.** Caller speech while the agent talks (``interrupt_sensitivity``) cancels the
  model and TTS work at once; the session truncates at the heard position and this engine
  answers with the exact words heard (TTS word timings), which is also what stays in the
  model's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bridge.engines.base import EngineClient
from bridge.engines.pipeline.parts import (
    LanguageModel,
    Message,
    SpeechToText,
    TextDelta,
    TextToSpeech,
    ToolCall,
    ToolSchema,
    Word,
)
from bridge.engines.pipeline.sentences import SentenceBuffer
from bridge.engines.pipeline.vad import TurnDetector
from bridge.errors import EngineUnavailable
from bridge.session import actions as act
from bridge.session import events as ev
from bridge.session.config import EngineCapabilities

log = logging.getLogger(__name__)

CAPABILITIES = EngineCapabilities(
    server_vad=True,
    truncates=True,
    auto_interrupt=True,
    transcripts=True,
    audio_formats=("pcmu",),
    # The session asks for the greeting when it is due (``initial_message_delay_s``) with
    # ``CreateResponse(say=…)``: spoken as given, like any fixed text.
    speaks_initial_message=False,
    auto_response=False,
    heard_text=True,
)

MAX_CONSECUTIVE_FAILURES = 2
"""Model or TTS failures in a row after which the engine counts as dead (→ fallback)."""


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    instructions: str = ""
    tools: tuple[ToolSchema, ...] = ()
    endpointing: str = "auto"
    interrupt: str = "high"
    history: tuple[Message, ...] = ()
    """Conversation so far (when taking over a call from a failed engine)."""
    names: tuple[str, str, str] = ("stt", "llm", "tts")
    """What the parts are, for errors and the journal."""


@dataclass(slots=True)
class _Item:
    response_id: str
    item_id: str
    text: list[str] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    audio_ms: float = 0.0
    history_index: int | None = None
    heard: str | None = None
    """What the caller heard, once a barge-in cut the item short."""


class PipelineEngine(EngineClient):
    """One cascaded conversation for one call."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        config: PipelineConfig,
        *,
        stt: SpeechToText,
        llm: LanguageModel,
        tts: TextToSpeech,
        call_id: str = "",
    ) -> None:
        self.config = config
        self.stt, self.llm, self.tts = stt, llm, tts
        self.call_id = call_id
        self.vad = TurnDetector(endpointing=config.endpointing, interrupt=config.interrupt)
        self.history: list[Message] = []
        if config.instructions:
            self.history.append({"role": "system", "content": config.instructions})
        self.history += [dict(m) for m in config.history]
        self._queue: asyncio.Queue[ev.EngineEvent] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._response: asyncio.Task[None] | None = None
        self._response_id: str | None = None
        self._items: dict[str, _Item] = {}
        self._user_item: str | None = None
        self._turn_tasks: set[asyncio.Task[None]] = set()
        self._audio_until_ms = 0.0
        self._failures = 0
        self._closed = False
        self._dead = False
        """The engine failed (its parts are still to be closed by :meth:`close`)."""

    # -- EngineClient ------------------------------------------------------------------------

    async def connect(self) -> None:
        await self.stt.start()
        self._emit(ev.EngineReady())

    async def send_audio(self, payload: bytes) -> None:
        """Hot path: one caller chunk → STT, and the VAD's view of turns."""
        await self.stt.feed(payload)
        failure = self.stt.failure()
        if failure is not None:
            self._die(failure)
            return
        for kind in self.vad.feed(payload, agent_speaking=self._agent_speaking()):
            if kind == "start":
                self._on_speech_started()
            else:
                self._spawn(self._on_speech_ended())

    async def send(self, action: act.EngineAction) -> None:
        if isinstance(action, act.SendAudio):
            await self.send_audio(action.payload)
        elif isinstance(action, act.TruncateAgent):
            self._truncate(action.item_id, action.audio_end_ms)
        elif isinstance(action, act.CancelResponse):
            self._cancel_response()
        elif isinstance(action, act.AddUserText):
            self.history.append({"role": "user", "content": action.text})
        elif isinstance(action, act.AddSystemText):
            self.history.append({"role": "system", "content": action.text})
        elif isinstance(action, act.AddToolOutput):
            self.history.append(
                {"role": "tool", "tool_call_id": action.call_id, "content": action.output}
            )
        elif isinstance(action, act.CreateResponse):
            self._start_response(fixed_text=action.say)

    async def events(self) -> AsyncIterator[ev.EngineEvent]:
        while True:
            event = await self._queue.get()
            yield event
            if type(event) is ev.EngineClosed:
                return

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cancel_response()
        for task in list(self._turn_tasks):
            task.cancel()
        for part in (self.stt, self.llm, self.tts):
            with contextlib.suppress(Exception):
                await part.close()

    # -- caller turns ------------------------------------------------------------------------

    def _agent_speaking(self) -> bool:
        return self._response is not None or self.vad.position_ms < self._audio_until_ms

    def _on_speech_started(self) -> None:
        self._user_item = f"user_{next(self._ids)}"
        # The VAD fires after enough speech (more while the agent talks): the utterance began
        # at the first voiced frame of the run, which may be a few hundred ms back.
        self.stt.speech_started(self.vad.position_ms - self.vad.onset_ms)
        self._emit(ev.SpeechStarted(self._user_item, self.vad.position_ms))
        self._audio_until_ms = 0.0
        self._cancel_response()

    async def _on_speech_ended(self) -> None:
        item = self._user_item or f"user_{next(self._ids)}"
        self._emit(ev.SpeechStopped(item))
        try:
            text = (await self.stt.finalize()).strip()
        except EngineUnavailable as exc:
            self._die(f"{self.config.names[0]}: {exc.message}")
            return
        if not text:
            return  # noise, a cough: no turn
        self._emit(ev.UserTranscript(item, text))
        self.history.append({"role": "user", "content": text})
        if not self.vad.speaking:  # the caller went on talking: wait for the whole turn
            self._start_response()

    # -- agent responses ---------------------------------------------------------------------

    def _start_response(self, fixed_text: str | None = None) -> None:
        if self._closed or self._dead:
            return
        self._cancel_response()
        n = next(self._ids)
        response_id, item_id = f"resp_{n}", f"item_{n}"
        self._response_id = response_id
        self._emit(ev.ResponseStarted(response_id))
        item = _Item(response_id, item_id)
        self._items[item_id] = item
        self._response = asyncio.create_task(self._respond(item, fixed_text))

    def _cancel_response(self) -> None:
        task, self._response = self._response, None
        if task is not None and not task.done():
            task.cancel()

    async def _respond(self, item: _Item, fixed_text: str | None) -> None:
        calls: list[ToolCall] = []
        status, error = "completed", None
        try:
            if fixed_text is not None:
                await self._speak(item, fixed_text)
            else:
                calls = await self._generate(item)
            self._failures = 0
        except asyncio.CancelledError:
            status = "cancelled"
        except EngineUnavailable as exc:
            status, error = "failed", exc.message
        finally:
            self._finish(item, calls, status, error)

    async def _generate(self, item: _Item) -> list[ToolCall]:
        sentences = SentenceBuffer()
        calls: list[ToolCall] = []
        async for out in self.llm.respond(list(self.history), self.config.tools):
            if isinstance(out, TextDelta):
                for sentence in sentences.push(out.text):
                    await self._speak(item, sentence)
            else:
                calls.append(out)
        rest = sentences.flush()
        if rest:
            await self._speak(item, rest)
        return calls

    async def _speak(self, item: _Item, sentence: str) -> None:
        item.text.append(sentence)
        offset = item.audio_ms
        async for chunk in self.tts.speak(sentence):
            item.words += [
                Word(w.text, w.start_ms + offset, w.end_ms + offset) for w in chunk.words
            ]
            if not chunk.audio:
                continue
            duration_ms = len(chunk.audio) / 8.0
            item.audio_ms += duration_ms
            start = max(self._audio_until_ms, self.vad.position_ms)
            self._audio_until_ms = start + duration_ms
            self._emit(ev.AgentAudio(item.response_id, item.item_id, chunk.audio))
        if not item.words or item.words[-1].end_ms < offset:  # no timings: spread the words
            item.words += _spread(sentence, offset, item.audio_ms)

    def _finish(self, item: _Item, calls: list[ToolCall], status: str, error: str | None) -> None:
        text = " ".join(item.text)
        said = item.heard if item.heard is not None else text
        if said or calls:
            message: Message = {"role": "assistant", "content": said or None}
            if calls:
                message["tool_calls"] = [
                    {
                        "id": c.call_id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in calls
                ]
            item.history_index = len(self.history)
            self.history.append(message)
        if text:
            self._emit(ev.AgentTranscript(item.response_id, item.item_id, text))
        if item.audio_ms:
            self._emit(ev.AgentAudioDone(item.response_id, item.item_id))
        if status == "completed":
            for call in calls:
                self._emit(ev.ToolCallRequested(call.call_id, call.name, call.arguments))
        if status == "failed":
            self._failures += 1
            self._emit(ev.EngineError(f"response failed: {error}", "response_failed"))
        self._emit(ev.ResponseDone(item.response_id, status, error))
        if self._response_id == item.response_id:
            self._response_id = self._response = None
        if self._failures >= MAX_CONSECUTIVE_FAILURES:
            self._die(f"{MAX_CONSECUTIVE_FAILURES} responses failed in a row; last: {error}")

    def _truncate(self, item_id: str, heard_ms: int) -> None:
        """The caller heard ``heard_ms`` of this item: keep exactly those words."""
        item = self._items.get(item_id)
        if item is None:
            return
        heard = " ".join(w.text for w in item.words if (w.start_ms + w.end_ms) / 2 <= heard_ms)
        item.heard = heard
        if item.history_index is not None:  # else _finish of the cancelled task writes it
            self.history[item.history_index]["content"] = heard or None
        self._emit(ev.AgentHeardText(item_id, heard))

    # -- plumbing ----------------------------------------------------------------------------

    def _emit(self, event: ev.EngineEvent) -> None:
        self._queue.put_nowait(event)

    def _die(self, reason: str) -> None:
        if self._closed or self._dead:
            return
        log.warning("call %s: pipeline engine failed: %s", self.call_id, reason)
        self._dead = True
        self._cancel_response()
        self._emit(ev.EngineClosed(reason))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._turn_tasks.add(task)
        task.add_done_callback(self._turn_tasks.discard)


def _spread(text: str, start_ms: float, end_ms: float) -> list[Word]:
    """Word timings spread evenly by length, for TTS that gives none."""
    words = text.split()
    total = sum(len(w) + 1 for w in words) or 1
    span = max(0.0, end_ms - start_ms)
    out: list[Word] = []
    at = start_ms
    for word in words:
        length = span * (len(word) + 1) / total
        out.append(Word(word, at, at + length))
        at += length
    return out
