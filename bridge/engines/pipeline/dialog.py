"""A scripted dialog in place of a language model: intents, slot filling, a tool, ``end_call``.

The script is data (``[dialog]`` in the agent file). Each caller utterance is matched to an
intent by its example phrases; an intent may need slots (asked for in turn, filled from any
utterance that names a value), may call a tool with the filled slots and reply with the tool's
result (``{{slot}}`` and ``{{field}}`` of a JSON result fill the reply), and may end the call.
It speaks the same :class:`~.parts.LanguageModel` interface as a real model, so the pipeline
treats both alike, and it reads only the chat history it is given plus its own state.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from bridge.agents.model import DialogIntent, DialogScript
from bridge.engines.pipeline.parts import LanguageModel, Message, TextDelta, ToolCall, ToolSchema

_WORD = re.compile(r"[a-z0-9']+")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
MATCH_THRESHOLD = 0.6
"""Share of an example's words an utterance must contain to match its intent."""
END_CALL = "end_call"


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


class DialogState:
    """Where one call is in the script. Pure: text in → reply out."""

    def __init__(self, script: DialogScript) -> None:
        self.script = script
        self.intent: DialogIntent | None = None
        self.slots: dict[str, str] = {}

    def match_intent(self, words: list[str]) -> DialogIntent | None:
        best: tuple[float, int, DialogIntent] | None = None
        for intent in self.script.intents:
            for example in intent.examples:
                wanted = _words(example)
                if not wanted:
                    continue
                score = sum(1 for w in wanted if w in words) / len(wanted)
                key = (score, len(wanted), intent)
                if score >= MATCH_THRESHOLD and (best is None or key[:2] > best[:2]):
                    best = key
        return best[2] if best else None

    def fill_slots(self, words: list[str]) -> None:
        for slot in self.script.slots.values():
            for value in slot.values:
                if _contains(words, _words(value)):
                    self.slots[slot.name] = value

    def hear(self, text: str) -> tuple[str, str | None]:
        """The caller said ``text``: (what to say, tool to call or None)."""
        words = _words(text)
        before = dict(self.slots)
        self.fill_slots(words)
        intent = self.match_intent(words)
        if intent is not None:
            self.intent = intent
        current = self.intent
        if current is None:
            return self.script.fallback, None
        missing = [name for name in current.slots if name not in self.slots]
        if missing:
            ask = self.script.slots[missing[0]].ask
            understood = intent is not None or self.slots != before
            return (ask if understood else f"{self.script.fallback} {ask}"), None
        if current.tool:
            return "", current.tool
        return self._finish(current, {})

    def tool_done(self, output: str) -> tuple[str, str | None]:
        """The intent's tool answered ``output``: (what to say, ``end_call`` or None)."""
        current = self.intent
        if current is None:
            return self.script.fallback, None
        try:
            result = json.loads(output)
        except ValueError:
            result = {"result": output}
        if not isinstance(result, dict):
            result = {"result": result}
        if "error" in result and current.tool_error_reply:
            self.intent = None
            return self._fill(current.tool_error_reply, result), None
        return self._finish(current, result)

    def _finish(self, intent: DialogIntent, result: Mapping[str, Any]) -> tuple[str, str | None]:
        text = self._fill(intent.reply, result)
        for slot_name in intent.slots:
            self.slots.pop(slot_name, None)
        self.intent = None
        return text, END_CALL if intent.end_call else None

    def _fill(self, template: str, result: Mapping[str, Any]) -> str:
        values = {**{k: str(v) for k, v in result.items()}, **self.slots}
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)

    def tool_arguments(self) -> dict[str, str]:
        intent = self.intent
        return {name: self.slots[name] for name in (intent.slots if intent else ())}


class ScriptedModel(LanguageModel):
    """:class:`DialogState` behind the language-model interface."""

    def __init__(self, script: DialogScript) -> None:
        self.state = DialogState(script)
        self._ids = itertools.count(1)

    async def respond(
        self, messages: Sequence[Message], tools: Sequence[ToolSchema]
    ) -> AsyncIterator[TextDelta | ToolCall]:
        last = messages[-1] if messages else {"role": "system", "content": ""}
        if last["role"] == "tool":
            text, call = self.state.tool_done(str(last.get("content") or ""))
            arguments: dict[str, str] = {}
        else:
            said = str(last.get("content") or "") if last["role"] == "user" else ""
            text, call = self.state.hear(said)
            arguments = self.state.tool_arguments() if call and call != END_CALL else {}
        if text:
            for word in text.split(" "):
                yield TextDelta(word + " ")
        if call:
            yield ToolCall(f"call_{next(self._ids)}", call, json.dumps(arguments))
