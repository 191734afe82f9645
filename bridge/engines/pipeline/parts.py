"""The pluggable parts of the cascaded engine: speech-to-text, language model, text-to-speech.

Audio crossing these interfaces is always G.711 μ-law at 8 kHz (the pipeline's one format;
the runtime transcodes other carriers once at the edge). Each part turns its own failures into
:class:`~bridge.errors.EngineUnavailable` (cannot start, or died) so the pipeline can end the
call or hand it to the fallback engine with one clear reason.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.audio.words import Word

__all__ = [
    "LanguageModel",
    "Message",
    "SpeechChunk",
    "SpeechToText",
    "TextDelta",
    "TextToSpeech",
    "ToolCall",
    "ToolSchema",
    "Word",
]

Message = dict[str, Any]
"""One chat message in OpenAI's chat-completions shape (system / user / assistant / tool)."""


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    """A piece of synthesized speech (μ-law 8 kHz) and the words that start in it."""

    audio: bytes
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str
    """The raw JSON text of the arguments."""


@dataclass(frozen=True, slots=True)
class ToolSchema:
    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


class SpeechToText(abc.ABC):
    """Streams caller audio in; gives the text of an utterance when the turn ends."""

    async def start(self) -> None:
        """Connect or load; raises ``EngineUnavailable``."""
        return

    @abc.abstractmethod
    async def feed(self, audio: bytes) -> None:
        """Every caller chunk, speech or not."""

    def speech_started(self, preroll_ms: int) -> None:
        """Hint from the VAD: an utterance began ``preroll_ms`` ago (local recognisers drop
        what came before)."""
        return

    @abc.abstractmethod
    async def finalize(self) -> str:
        """The final text of the utterance so far, then start a new one."""

    def failure(self) -> str | None:
        """Why the part died mid-call, or None while it is healthy."""
        return None

    async def close(self) -> None:
        """Release the connection or the decoder."""
        return


class LanguageModel(abc.ABC):
    """Answers a conversation with streamed text and tool calls."""

    @abc.abstractmethod
    def respond(
        self, messages: Sequence[Message], tools: Sequence[ToolSchema]
    ) -> AsyncIterator[TextDelta | ToolCall]:
        """Stream one assistant turn. Raises ``EngineUnavailable`` if the model cannot answer."""

    async def close(self) -> None:
        """Release connections."""
        return


class TextToSpeech(abc.ABC):
    """Speaks a sentence as μ-law 8 kHz, streamed, with word timings when it has them."""

    @abc.abstractmethod
    def speak(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Stream the speech of ``text``. Raises ``EngineUnavailable``."""

    async def close(self) -> None:
        """Release connections."""
        return
