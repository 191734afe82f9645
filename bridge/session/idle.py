"""Silence on the line: when to ask "are you still there?", and when to give up.

Bookkeeping for the call core, with no clock of its own: the core tells it after every event
whether the line is *busy* (someone is speaking or about to, a tool runs, the call is paused)
and when the caller did something; it answers with the moment the next check is due.

A silent period starts when the line stops being busy — the agent's last words have *played*
at the carrier, not merely been sent — and lasts ``after_s``. Each period that passes is one
check, up to ``max_checks``; the caller speaking or pressing a key starts the count again. The
period after the last check ends the call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class IdleWatch:
    after_s: float | None
    """Length of a silent period; None: never check."""
    max_checks: int = 2
    checks: int = 0
    """Checks since the caller last spoke."""
    quiet_since: float | None = None
    """When the line became quiet; None while it is busy."""

    def observe(self, now: float, *, busy: bool) -> None:
        """The line's state after an event at ``now``."""
        if busy:
            self.quiet_since = None
        elif self.quiet_since is None:
            self.quiet_since = now

    def caller_active(self) -> None:
        """The caller spoke or pressed a key: a new silent period, and the count starts over."""
        self.checks = 0
        self.quiet_since = None

    def deadline(self) -> float | None:
        """When the current silent period ends, or None (no period running, or checks off)."""
        if self.after_s is None or self.quiet_since is None:
            return None
        return self.quiet_since + self.after_s

    def due(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def check(self) -> bool:
        """A silent period passed: True to ask the caller (counted), False to give up."""
        self.quiet_since = None
        if self.checks >= self.max_checks:
            return False
        self.checks += 1
        return True
