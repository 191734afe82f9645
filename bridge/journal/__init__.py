"""The call journal: every call's summary, transcript, events and tool calls.

``JournalStore`` reads and writes SQLite (default) or PostgreSQL; ``JournalWriter`` queues the
call core's ``Journal*`` actions and writes them from a background task, off the audio hot path;
``new_call_id`` makes the time-sortable ids calls are journaled under.
"""

from bridge.journal.ids import new_call_id
from bridge.journal.models import CallDetail, CallSummary, CallUpdate
from bridge.journal.store import CallNotFound, JournalError, JournalStore
from bridge.journal.writer import JournalWriter

__all__ = [
    "CallDetail",
    "CallNotFound",
    "CallSummary",
    "CallUpdate",
    "JournalError",
    "JournalStore",
    "JournalWriter",
    "new_call_id",
]
