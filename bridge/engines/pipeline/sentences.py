"""Cut a streamed reply into sentences, so speech starts before the reply is complete."""

from __future__ import annotations

import re

_END = re.compile(r"[.!?…]+[\"')\]]*\s+|\n+")
_SOFT = re.compile(r"[,;:—]\s+")


class SentenceBuffer:
    """Text deltas in, whole sentences out.

    A sentence ends at ``. ! ?`` followed by white space, or a line break. A clause break
    (``, ; :``) also ends one once the text is longer than ``soft_limit`` characters, so a long
    first sentence does not hold speech back. Pure: no clock.
    """

    def __init__(self, *, soft_limit: int = 100, min_chars: int = 2) -> None:
        self._text = ""
        self._soft_limit = soft_limit
        self._min_chars = min_chars

    def push(self, delta: str) -> list[str]:
        self._text += delta
        out: list[str] = []
        while True:
            match = _END.search(self._text)
            if match is None and len(self._text) > self._soft_limit:
                match = _SOFT.search(self._text, self._min_chars)
            if match is None:
                return out
            sentence, self._text = self._text[: match.end()].strip(), self._text[match.end() :]
            if len(sentence) >= self._min_chars:
                out.append(sentence)
            elif sentence:
                self._text = sentence + " " + self._text

    def flush(self) -> str:
        rest, self._text = self._text.strip(), ""
        return rest
