"""When a failed webhook delivery is tried again, and when it is given up.

Attempt ``n`` (counting from 1) that fails is followed, after ``delay_s(n)``, by attempt ``n + 1``:
``base_s · 2^(n−1)``, at most ``cap_s``, times a jitter factor between 0.5 and 1 ("equal
jitter": receivers that were down are not hit by every sender at the same instant, and the wait
never drops below half the nominal one). After ``max_attempts`` failures the delivery is
``dead``. With the defaults (2 s, 1 h, 12 attempts) the retries span roughly 1.5 to 3 hours.

Pure: the random draw is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import ConfigError

__all__ = ["RetryPolicy"]

_MAX_EXPONENT = 60  # 2**60 s is beyond any cap: keeps the float finite


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 12
    base_s: float = 2.0
    cap_s: float = 3600.0
    timeout_s: float = 10.0
    """One attempt's time limit (connect, send, answer)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("CALLBRIDGE_WEBHOOK_MAX_ATTEMPTS must be at least 1")
        if not (self.base_s > 0 and self.cap_s >= self.base_s):
            raise ConfigError(
                "CALLBRIDGE_WEBHOOK_BACKOFF_S must be > 0 and at most "
                "CALLBRIDGE_WEBHOOK_BACKOFF_MAX_S"
            )
        if self.timeout_s <= 0:
            raise ConfigError("CALLBRIDGE_WEBHOOK_TIMEOUT_S must be > 0")

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery stays leased: the attempt's limit and room to spare."""
        return 2 * self.timeout_s + 30.0

    def gives_up(self, attempts: int) -> bool:
        """Whether a delivery that failed its ``attempts``-th attempt is dead."""
        return attempts >= self.max_attempts

    def delay_s(self, attempts: int, draw: float) -> float:
        """The wait after failed attempt ``attempts``; ``draw`` is uniform in [0, 1)."""
        nominal = min(self.cap_s, self.base_s * 2.0 ** min(max(attempts, 1) - 1, _MAX_EXPONENT))
        return nominal * (0.5 + 0.5 * min(max(draw, 0.0), 1.0))
