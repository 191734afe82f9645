"""The fake agent's "brain": what it is asked (:class:`FakeTurn`) and what it answers (:class:`Reply`).

A *responder* is any callable ``(FakeTurn) -> Reply | None``. It runs on the event loop, so it
must not block. ``None`` means "say nothing" (for a VAD turn no response is created; for an
explicit ``response.create`` an empty completed response is sent).

Two ready-made responders: :func:`echo_responder` (the default: "you said …") and
:class:`ScriptedResponder` (replies in order, recording every turn it was asked).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "FakeTurn",
    "Reply",
    "Responder",
    "ScriptedResponder",
    "TurnKind",
    "echo_responder",
    "quoted_text",
    "scripted",
]

TurnKind = Literal["audio", "text", "function_call_output", "response.create"]


@dataclass(frozen=True)
class FakeTurn:
    """Why the fake is about to respond, and with what input.

    ``kind`` is the input that preceded the response: ``audio`` (a committed user utterance;
    ``transcript`` is what pocketsphinx heard), ``text`` (a user ``input_text`` item), or
    ``function_call_output`` (``tool_name``/``call_id``/``tool_output``); ``response.create``
    means the client asked for a response with no new input (``instructions`` then matters).
    ``instructions`` is the per-response override from ``response.create``, if any.
    """

    kind: TurnKind
    index: int
    transcript: str | None = None
    text: str | None = None
    call_id: str | None = None
    tool_name: str | None = None
    tool_output: str | None = None
    instructions: str | None = None
    item_id: str | None = None


@dataclass(frozen=True)
class Reply:
    """One scripted response: speak ``text``, call the function ``name`` with ``arguments``,
    or both in that order (:meth:`say_then_call`)."""

    kind: Literal["say", "call"]
    text: str = ""
    name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def say(cls, text: str) -> Reply:
        return cls(kind="say", text=text)

    @classmethod
    def call(cls, name: str, arguments: dict[str, Any] | None = None) -> Reply:
        return cls(kind="call", name=name, arguments=dict(arguments or {}))

    @classmethod
    def say_then_call(cls, text: str, name: str, arguments: dict[str, Any] | None = None) -> Reply:
        """One response that speaks ``text`` and then calls ``name`` (e.g. goodbye + end_call)."""
        return cls(kind="say", text=text, name=name, arguments=dict(arguments or {}))


Responder = Callable[[FakeTurn], "Reply | None"]

_QUOTED = re.compile(r"[\"“]([^\"”]+)[\"”]")


def quoted_text(instructions: str | None) -> str | None:
    """The first double-quoted sentence in ``instructions`` (``Say exactly: "Hi."`` → ``Hi.``)."""
    if not instructions:
        return None
    match = _QUOTED.search(instructions)
    return match.group(1).strip() if match else None


def _speakable(text: str) -> str:
    return " ".join(re.findall(r"[A-Za-z0-9']+", text))


def echo_responder(turn: FakeTurn) -> Reply:
    """Default script: echo what the caller said, or describe the tool result."""
    if turn.kind == "audio":
        heard = turn.transcript or ""
        return Reply.say(f"you said {heard}" if heard else "sorry I did not catch that")
    if turn.kind == "text":
        return Reply.say(f"you said {turn.text or ''}")
    if turn.kind == "function_call_output":
        return Reply.say(f"the {_speakable(turn.tool_name or 'tool')} tool returned a result")
    return Reply.say("hello how can I help you")


class ScriptedResponder:
    """Replies from a list, in order; strings are shorthand for :meth:`Reply.say`.

    Every turn asked is kept in :attr:`turns`. When the list runs out, ``when_exhausted``
    is returned (``None`` by default: say nothing).
    """

    def __init__(
        self, replies: Iterable[Reply | str], *, when_exhausted: Reply | None = None
    ) -> None:
        self._replies = [Reply.say(r) if isinstance(r, str) else r for r in replies]
        self._next = 0
        self.when_exhausted = when_exhausted
        self.turns: list[FakeTurn] = []

    @property
    def remaining(self) -> int:
        return len(self._replies) - self._next

    def __call__(self, turn: FakeTurn) -> Reply | None:
        self.turns.append(turn)
        if self._next >= len(self._replies):
            return self.when_exhausted
        reply = self._replies[self._next]
        self._next += 1
        return reply


def scripted(*replies: Reply | str, when_exhausted: Reply | None = None) -> ScriptedResponder:
    """``scripted("hello", Reply.call("lookup", {...}), "it has shipped")``."""
    return ScriptedResponder(replies, when_exhausted=when_exhausted)
