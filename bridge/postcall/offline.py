"""The post-call step without a language model: deterministic, extractive, explainable.

**Summary** (at most :data:`~bridge.postcall.fields.MAX_SUMMARY_CHARS` characters):

1. who and how long: ``Inbound twilio call from +15550001111 with agent front, 1 min 5 s,
   ended completed (caller hung up).``;
2. ``No conversation was recorded.`` when there are no turns, else the number of turns and how
   many were the caller's;
3. ``The caller said: “…”; “…”; “….”`` — the caller's three most contentful sentences (most
   words of four letters or more; the earlier wins a tie; sentences with none are skipped), in
   the order they were said;
4. ``The agent said: “…”.`` — the agent's most contentful sentence after its first turn (the
   later wins a tie), when there is one.

**Fields** — only the caller's words count. A field's *keywords* are the words of four letters
or more of its name and description, common words left out (:data:`STOPWORDS`); a word
*mentions* a keyword when it begins with the keyword less its last two letters (at least four
letters: ``remind`` for ``reminder``). The sentences looked at are the caller's sentences that
mention a keyword, and the first sentence of a caller turn right after an agent turn whose last
sentence mentions one (the answer to a question). Of these, the last one giving a value wins
(callers correct themselves); nothing found is ``null``.

* ``boolean``: a sentence with a "no" word (no, nope, not, don't, never, nah, …) is ``false``;
  else one with a "yes" word (yes, yeah, yep, sure, correct, okay, please, …) is ``true``.
* ``number``: digits (``12``, ``4.5``, ``1,200``) or English number words up to ninety-nine
  (``twenty five``); in a sentence that mentions a keyword, the number nearest the mention.
* ``enum``: a value (case-insensitive, ``_`` and ``-`` read as spaces) named in *any* caller
  sentence; the last one named wins.
* ``string``: for a field whose name contains the word ``name`` (every caller sentence is
  looked at), the words after "my name is", "my name's", "name is", "this is" or "call me" —
  or, in an answer, after "it's", "it is", "i am", "i'm" — up to three, stopping at a clause
  break or a word like "calling", "fine" or "a", title-cased; for other fields, the words after
  the first "is" / "are" / "was" (or a ":") that follows the keyword, up to six, stopping at
  "and", "but", "so", "because"; failing both, a whole answer of at most six words (three for a
  name), leading fillers ("yes", "sure", "it's", "um") dropped.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.agents.model import CollectField
from bridge.postcall.fields import MAX_SUMMARY_CHARS
from bridge.session.actions import JournalTurn

__all__ = ["STOPWORDS", "CallInfo", "extract", "keywords", "offline_answer", "summarize"]

CALLER = "user"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _words(
    """about after also been before call caller callers calls does each from have into just
    like many much only other over should some such than that their them then there they this
    those very want wants what when where whether which while will with would your yours"""
)
YES = _words("yes yeah yep yup sure correct right ok okay absolutely definitely please")
NO = _words("no nope not don't dont never nah negative")
FILLERS = _words("yes yeah yep sure um uh er well so ok okay it's its it is that's thats")
_NAME_STOP = _words(
    """a an the and but so because calling phoning ringing looking trying just here speaking
    from with about to for on at please thanks thank i i'm not fine good great well sorry
    afraid interested wondering going having hoping new also still sure ok okay"""
)
_CLAUSE_STOP = _words("and but so because")
_UNIT_WORDS = """zero one two three four five six seven eight nine ten eleven twelve thirteen
    fourteen fifteen sixteen seventeen eighteen nineteen"""
_UNITS = {word: value for value, word in enumerate(_UNIT_WORDS.split())}
_TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety"
_TENS = {word: 10 * (index + 2) for index, word in enumerate(_TENS_WORDS.split())}
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[a-z]+(?:'[a-z]+)?")
_NAME_INTRO = re.compile(r"\b(?:my name is|my name's|name is|this is|call me)\s+(.+)", re.I)
_ANSWER_INTRO = re.compile(r"\b(?:it's|it is|its|i am|i'm)\s+(.+)", re.I)
MAX_QUOTE_CHARS = 160


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The facts of a call the summary opens with."""

    direction: str = "inbound"
    carrier: str = ""
    agent: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    status: str = "completed"
    end_reason: str | None = None
    duration_secs: float | None = None


def offline_answer(
    info: CallInfo, turns: Sequence[JournalTurn], fields: Sequence[CollectField]
) -> tuple[str, dict[str, Any]]:
    """The summary and the collected fields, by the rules of the module docstring."""
    return summarize(info, turns), extract(turns, fields)


# --- the summary --------------------------------------------------------------------------


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE.split(text) if part.strip()]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _weight(sentence: str) -> int:
    return sum(1 for token in _tokens(sentence) if len(token) >= 4 and token.isalpha())


def _key_sentences(candidates: Sequence[str], count: int, *, prefer_late: bool) -> list[str]:
    seen: set[str] = set()
    scored: list[tuple[int, int, str]] = []
    for index, sentence in enumerate(candidates):
        key = sentence.lower()
        weight = _weight(sentence)
        if weight == 0 or key in seen:
            continue
        seen.add(key)
        scored.append((weight, index, sentence))
    order = sorted(scored, key=lambda s: (-s[0], -s[1] if prefer_late else s[1]))[:count]
    return [sentence for _, _, sentence in sorted(order, key=lambda s: s[1])]


def _quote(sentence: str) -> str:
    text = sentence.rstrip(".!")
    if len(text) > MAX_QUOTE_CHARS:
        text = text[: MAX_QUOTE_CHARS - 1].rstrip() + "…"
    return f"“{text}”"


def _duration(seconds: float) -> str:
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _opening(info: CallInfo) -> str:
    inbound = info.direction != "outbound"
    text = ("Inbound" if inbound else "Outbound") + (f" {info.carrier}" if info.carrier else "")
    text += " call"
    party = info.from_number if inbound else info.to_number
    if party:
        text += f" {'from' if inbound else 'to'} {party}"
    if info.agent:
        text += f" with agent {info.agent}"
    if info.duration_secs is not None:
        text += f", {_duration(info.duration_secs)}"
    text += f", ended {info.status}"
    if info.end_reason:
        text += f" ({info.end_reason})"
    return text + "."


def summarize(info: CallInfo, turns: Sequence[JournalTurn]) -> str:
    """The extractive summary (module docstring, "Summary")."""
    parts = [_opening(info)]
    if not turns:
        parts.append("No conversation was recorded.")
        return " ".join(parts)[:MAX_SUMMARY_CHARS]
    said = [s for turn in turns if turn.role == CALLER for s in sentences(turn.text)]
    callers = sum(1 for turn in turns if turn.role == CALLER)
    plural = "s" if len(turns) != 1 else ""
    parts.append(f"{len(turns)} turn{plural}, {callers} from the caller.")
    key = _key_sentences(said, 3, prefer_late=False)
    if key:
        parts.append("The caller said: " + "; ".join(_quote(s) for s in key) + ".")
    agent_turns = [turn for turn in turns if turn.role != CALLER][1:]
    best = _key_sentences(
        [s for turn in agent_turns for s in sentences(turn.text)], 1, prefer_late=True
    )
    if best:
        parts.append(f"The agent said: {_quote(best[0])}.")
    return " ".join(parts)[:MAX_SUMMARY_CHARS]


# --- the fields ---------------------------------------------------------------------------


def keywords(field: CollectField) -> tuple[str, ...]:
    """The words that point at ``field`` in a transcript."""
    words = re.split(r"[^a-z]+", f"{field.name} {field.description}".lower())
    return tuple(dict.fromkeys(w for w in words if len(w) >= 4 and w not in STOPWORDS))


def _stem(keyword: str) -> str:
    return keyword[: max(4, len(keyword) - 2)]


def _mention_at(tokens: Sequence[str], keys: Sequence[str]) -> list[int]:
    stems = [_stem(key) for key in keys]
    return [i for i, token in enumerate(tokens) if any(token.startswith(s) for s in stems)]


def _candidates(
    turns: Sequence[JournalTurn], keys: Sequence[str], *, every: bool = False
) -> Iterator[tuple[str, bool]]:
    """``(sentence, is_answer)``: caller sentences that mention a key (``every``: all of them),
    and answers to an agent turn whose last sentence mentions one."""
    previous: JournalTurn | None = None
    for turn in turns:
        if turn.role != CALLER:
            previous = turn
            continue
        asked_text = sentences(previous.text)[-1:] if previous is not None else []
        asked = bool(asked_text) and bool(_mention_at(_tokens(asked_text[0]), keys))
        previous = None
        for index, sentence in enumerate(sentences(turn.text)):
            if asked and index == 0:
                yield sentence, True
            elif every or _mention_at(_tokens(sentence), keys):
                yield sentence, False


def _yes_no(tokens: Sequence[str]) -> bool | None:
    if any(token in NO for token in tokens):
        return False
    if any(token in YES for token in tokens):
        return True
    return None


def _numbers(tokens: Sequence[str]) -> list[tuple[int, float]]:
    """``(token index, value)`` of every number in the tokens."""
    found: list[tuple[int, float]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token[0].isdigit():
            try:
                found.append((index, float(token.replace(",", ""))))
            except ValueError:
                pass
        elif token in _TENS:
            value = _TENS[token]
            following = tokens[index + 1] if index + 1 < len(tokens) else ""
            if 0 < _UNITS.get(following, 0) < 10:
                value += _UNITS[following]
                index += 1
            found.append((index, float(value)))
        elif token in _UNITS:
            found.append((index, float(_UNITS[token])))
        index += 1
    return found


def _number(sentence: str, keys: Sequence[str], answer: bool) -> int | float | None:
    tokens = _tokens(sentence)
    numbers = _numbers(tokens)
    if not numbers:
        return None
    mentions = _mention_at(tokens, keys)
    if answer or not mentions:
        value = numbers[0][1]
    else:
        value = min(numbers, key=lambda n: min(abs(n[0] - m) for m in mentions))[1]
    return int(value) if value.is_integer() else value


def _enum(sentence: str, values: Sequence[str]) -> str | None:
    text = " " + " ".join(_tokens(sentence)) + " "
    best: tuple[int, str] | None = None
    for value in values:
        phrase = " " + " ".join(_tokens(re.sub(r"[_-]", " ", value))) + " "
        at = text.rfind(phrase)
        if phrase.strip() and at >= 0 and (best is None or at > best[0]):
            best = (at, value)
    return None if best is None else best[1]


def _words_after(rest: str, limit: int, stop: frozenset[str]) -> list[str]:
    out: list[str] = []
    for word in re.split(r"\s+", rest.strip()):
        bare = word.strip(".,;:!?\"'“”()").lower()
        if not bare or bare in stop or len(out) == limit:
            break
        out.append(word.strip('.,;:!?"“”()'))
        if word[-1:] in ",;:.!?":
            break
    return out


def _string(sentence: str, keys: Sequence[str], answer: bool, is_name: bool) -> str | None:
    if is_name:
        match = _NAME_INTRO.search(sentence) or (_ANSWER_INTRO.search(sentence) if answer else None)
        if match is not None:
            words = _words_after(match.group(1), 3, _NAME_STOP)
            return " ".join(w.capitalize() for w in words) or None
    else:
        tokens = re.split(r"\s+", sentence)
        mentions = _mention_at([t.strip(".,;:!?").lower() for t in tokens], keys)
        if mentions:
            for index in range(mentions[0] + 1, len(tokens)):
                word = tokens[index].lower().strip(",;.!?")
                if word in ("is", "are", "was") or tokens[index - 1].endswith(":"):
                    start = index + 1 if word in ("is", "are", "was") else index
                    words = _words_after(" ".join(tokens[start:]), 6, _CLAUSE_STOP)
                    if words:
                        return " ".join(words)
                    break
    if not answer:
        return None
    words = [w for w in re.split(r"\s+", sentence.strip()) if w.strip(".,;:!?")]
    while words and words[0].lower().strip(".,;:!?") in FILLERS:
        words.pop(0)
    if not words or len(words) > (3 if is_name else 6):
        return None
    text = " ".join(w.strip(".,;:!?") for w in words)
    return " ".join(w.capitalize() for w in text.split()) if is_name else text


def _field_value(turns: Sequence[JournalTurn], field: CollectField) -> Any:
    if field.type == "enum":
        named = None
        for turn in turns:
            if turn.role == CALLER:
                for sentence in sentences(turn.text):
                    named = _enum(sentence, field.values) or named
        return named
    keys = keywords(field)
    is_name = "name" in re.split(r"[^a-z]+", field.name.lower())
    value: Any = None
    for sentence, answer in _candidates(turns, keys, every=is_name):
        if field.type == "boolean":
            found: Any = _yes_no(_tokens(sentence))
        elif field.type == "number":
            found = _number(sentence, keys, answer)
        else:
            found = _string(sentence, keys, answer, is_name)
        if found is not None:
            value = found
    return value


def extract(turns: Sequence[JournalTurn], fields: Sequence[CollectField]) -> dict[str, Any]:
    """Every field's value by the rules of the module docstring (``None``: not found)."""
    return {field.name: _field_value(turns, field) for field in fields}
