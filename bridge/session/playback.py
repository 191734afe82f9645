"""Playback accounting: how much agent audio the caller has actually heard.

Every chunk of agent audio sent to the carrier is followed by a mark. When the carrier reports the
mark, everything queued before it has been played, so the item's *heard* position advances to the
mark's position. This — not a wall-clock guess — is what ``conversation.item.truncate`` gets on
barge-in.

Between two marks the position is refined with the time since the last acknowledgement, never
beyond the next unacknowledged mark: the marks bound the answer, the clock only places it within
one chunk (20 ms by default). Without that refinement the figure is floored to the chunk grid.

After a ``clear`` the carrier answers every pending mark at once; those answers mean "flushed",
not "played", so they are remembered and ignored.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class _PendingMark:
    name: str
    item_id: str
    position_ms: float


class PlaybackLedger:
    """Per-call ledger of agent audio sent to and played by the carrier.

    ``bytes_per_ms`` is the carrier format's rate (8 for G.711 at 8 kHz, 16 for PCM16 8 kHz).
    """

    def __init__(self, bytes_per_ms: float) -> None:
        self.bytes_per_ms = bytes_per_ms
        self._pending: deque[_PendingMark] = deque()
        self._flushed: set[str] = set()
        self._sent_ms: dict[str, float] = {}
        self._heard_ms: dict[str, float] = {}
        self._acked_at: float | None = None
        self._counter = 0

    # -- sending -----------------------------------------------------------------------------

    def sent(self, item_id: str, nbytes: int) -> str:
        """Record ``nbytes`` of ``item_id`` sent to the carrier; return the mark to follow it."""
        position = self._sent_ms.get(item_id, 0.0) + nbytes / self.bytes_per_ms
        self._sent_ms[item_id] = position
        self._counter += 1
        name = f"m{self._counter}"
        self._pending.append(_PendingMark(name, item_id, position))
        return name

    # -- acknowledgements --------------------------------------------------------------------

    def acknowledge(self, name: str, now: float | None = None) -> bool:
        """The carrier reports mark ``name`` at ``now``. False for unknown or flushed marks.

        Carriers play in order, so a mark also acknowledges every mark queued before it.
        """
        if name in self._flushed:
            self._flushed.discard(name)
            return False
        if not any(mark.name == name for mark in self._pending):
            return False
        self._acked_at = now
        while self._pending:
            mark = self._pending.popleft()
            self._heard_ms[mark.item_id] = mark.position_ms
            if mark.name == name:
                break
        return True

    def flush(self) -> list[str]:
        """The carrier's queue was cleared: pending marks will be echoed but were not played.

        Returns the items that were cut short, oldest first (each at most once).
        """
        items: list[str] = []
        for mark in self._pending:
            self._flushed.add(mark.name)
            if mark.item_id not in items:
                items.append(mark.item_id)
        self._pending.clear()
        return items

    # -- queries -----------------------------------------------------------------------------

    def pending_items(self) -> list[str]:
        """Items with audio queued at the carrier, oldest first (each once)."""
        return list(dict.fromkeys(mark.item_id for mark in self._pending))

    @property
    def audible(self) -> bool:
        """Is agent audio queued at the carrier and not yet reported played?"""
        return bool(self._pending)

    @property
    def playing_item(self) -> str | None:
        """The item the caller is hearing now (the oldest with unplayed audio)."""
        return self._pending[0].item_id if self._pending else None

    def heard_ms(self, item_id: str, now: float | None = None) -> int:
        """Milliseconds of ``item_id`` the caller has heard.

        The position of the last acknowledged mark, plus — when ``now`` is given and the item is
        still playing — the time since that acknowledgement, capped at the next pending mark.
        """
        heard = self._heard_ms.get(item_id, 0.0)
        if now is not None and self._acked_at is not None and item_id in self._heard_ms:
            nxt = self._pending[0] if self._pending else None
            if nxt is not None and nxt.item_id == item_id:
                heard = min(nxt.position_ms, heard + max(0.0, now - self._acked_at) * 1000.0)
        return round(heard)

    def sent_ms(self, item_id: str) -> int:
        """Milliseconds of ``item_id`` sent to the carrier so far."""
        return int(self._sent_ms.get(item_id, 0.0))

    def forget(self, item_id: str) -> None:
        """Drop bookkeeping for an item that is fully played and journaled."""
        if not any(mark.item_id == item_id for mark in self._pending):
            self._sent_ms.pop(item_id, None)
            self._heard_ms.pop(item_id, None)
