"""Agent turns: which agent item is playing, finished or cut short, and when to journal it.

An agent turn is journaled once its transcript is known *and* its fate is: fully played (every
mark acknowledged after the engine said the audio is done) or interrupted (barge-in, hang-up). An
interrupted turn keeps the share of its words that matches the share of its audio the caller
heard (``heard_ms / sent_ms``) — an estimate, flagged ``interrupted``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bridge.session.actions import JournalTurn
from bridge.session.events import AgentTranscript
from bridge.session.playback import PlaybackLedger

TimeInCall = Callable[[float], float]


@dataclass(slots=True)
class AgentItem:
    item_id: str
    response_id: str
    started_at: float
    audio_done: bool = False
    transcript: str | None = None
    finished: bool = False
    interrupted: bool = False
    heard_ms: int = 0
    sent_ms: int = 0
    journaled: bool = False
    heard_text: str | None = None
    """Exactly what the caller heard of an interrupted item, when the engine can tell."""


def heard_words(text: str, heard_ms: int, sent_ms: int) -> str:
    """The leading share of ``text`` matching the share of audio heard."""
    if sent_ms <= 0:
        return ""
    words = text.split()
    keep = round(len(words) * min(1.0, heard_ms / sent_ms))
    return " ".join(words[:keep])


class AgentTurns:
    def __init__(self, ledger: PlaybackLedger, *, exact_heard: bool = False) -> None:
        self._ledger = ledger
        self.exact_heard = exact_heard
        """The engine reports the words heard after a barge-in: wait for them to journal."""
        self._items: dict[str, AgentItem] = {}
        self._playing: deque[AgentItem] = deque()

    def get(self, item_id: str) -> AgentItem | None:
        return self._items.get(item_id)

    def get_or_start(self, item_id: str, response_id: str, now: float) -> AgentItem:
        item = self._items.get(item_id)
        if item is None:
            item = AgentItem(item_id, response_id, now)
            self._items[item_id] = item
            self._playing.append(item)
        return item

    def unfinished_of(self, response_id: str | None) -> list[str]:
        return [i.item_id for i in self._playing if i.response_id == response_id]

    def on_played(self, time_in_call: TimeInCall) -> list[JournalTurn]:
        """Retire items whose audio is complete and fully acknowledged."""
        out: list[JournalTurn] = []
        playing = self._ledger.playing_item
        while self._playing and self._playing[0].audio_done and self._playing[0].item_id != playing:
            item = self._playing.popleft()
            item.finished = True
            item.sent_ms = item.heard_ms = self._ledger.sent_ms(item.item_id)
            out += self._journal(item, time_in_call)
        return out

    def interrupt(self, item_ids: list[str], now: float | None = None) -> list[AgentItem]:
        """Mark items cut short at ``now``; return them with ``heard_ms`` from the ledger."""
        cut: list[AgentItem] = []
        for item_id in item_ids:
            item = self._items.get(item_id)
            if item is None or item.finished:
                continue
            item.finished = item.interrupted = True
            item.heard_ms = self._ledger.heard_ms(item_id, now)
            item.sent_ms = self._ledger.sent_ms(item_id)
            if item in self._playing:
                self._playing.remove(item)
            cut.append(item)
        return cut

    def on_transcript(
        self, event: AgentTranscript, now: float, time_in_call: TimeInCall
    ) -> list[JournalTurn]:
        item = self._items.get(event.item_id)
        if item is None:  # a text-only answer: there is no audio to wait for
            item = AgentItem(event.item_id, event.response_id, now, audio_done=True)
            item.finished = True
            self._items[event.item_id] = item
        item.transcript = event.text
        return self._journal(item, time_in_call) if item.finished else []

    def on_heard_text(self, item_id: str, text: str, time_in_call: TimeInCall) -> list[JournalTurn]:
        """The engine says exactly what the caller heard of an interrupted item."""
        item = self._items.get(item_id)
        if item is None:
            return []
        item.heard_text = text
        return self._journal(item, time_in_call) if item.finished else []

    def end_audio(self, response_id: str | None) -> None:
        """No more audio will come for the unfinished items of ``response_id`` (engine gone)."""
        for item in self._playing:
            if item.response_id == response_id:
                item.audio_done = True

    def drain_finished(self, time_in_call: TimeInCall, *, final: bool = False) -> list[JournalTurn]:
        out: list[JournalTurn] = []
        for item in self._items.values():
            if item.finished:
                out += self._journal(item, time_in_call, final=final)
        return out

    def drain(self, time_in_call: TimeInCall) -> list[JournalTurn]:
        """The call is over: whatever is still playing was cut short by the hang-up — unless
        the caller heard all of it (engines that never say "audio done" until the next turn)."""
        cut: list[str] = []
        for item in list(self._playing):
            sent = self._ledger.sent_ms(item.item_id)
            if sent and self._ledger.heard_ms(item.item_id) >= sent:
                item.finished = True
                item.sent_ms = item.heard_ms = sent
                self._playing.remove(item)
            elif sent or item.transcript:
                cut.append(item.item_id)
        self.interrupt(cut)
        return self.drain_finished(time_in_call, final=True)

    def _journal(
        self, item: AgentItem, time_in_call: TimeInCall, *, final: bool = False
    ) -> list[JournalTurn]:
        if item.journaled or item.transcript is None:
            return []
        if item.interrupted and item.heard_text is None and self.exact_heard and not final:
            return []  # the engine will say which words were heard
        item.journaled = True
        text = item.transcript.strip()
        if item.interrupted:
            if item.heard_text is not None:
                text = item.heard_text.strip()
            else:
                text = heard_words(text, item.heard_ms, item.sent_ms)
        if not text:
            return []
        return [JournalTurn("agent", text, time_in_call(item.started_at), item.interrupted)]
