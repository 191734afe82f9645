"""Call ids: 26-character ULIDs, sortable by creation time, made in-process.

An id is 128 bits written as 26 Crockford base32 digits: a 48-bit Unix time in milliseconds
followed by 80 random bits. Strings compare in creation order, so the journal can page with
"calls whose id is greater than X" without a database sequence.

Within one process ids are strictly increasing. For a second id in the same millisecond (or after
the clock stepped back) the generator keeps the last timestamp and adds one to the random part.
If the random part overflows, which is rare, the timestamp moves on one millisecond.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["IdGenerator", "id_timestamp", "new_call_id"]

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(CROCKFORD)}
ID_LENGTH = 26
_RANDOM_BITS = 80
_MAX_RANDOM = (1 << _RANDOM_BITS) - 1
_MAX_TIMESTAMP = (1 << 48) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _encode(value: int) -> str:
    chars = []
    for _ in range(ID_LENGTH):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class IdGenerator:
    """Makes strictly increasing ULIDs. ``clock`` returns Unix milliseconds; both are injectable.

    Safe to share between threads: one lock guards the last (timestamp, random) pair.
    """

    def __init__(
        self,
        clock: Callable[[], int] = _wall_clock_ms,
        random_bits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        self._clock = clock
        self._random_bits = random_bits
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def new(self) -> str:
        with self._lock:
            now_ms = self._clock()
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._last_random = self._random_bits(_RANDOM_BITS)
            elif self._last_random < _MAX_RANDOM:
                self._last_random += 1
            else:
                self._last_ms += 1
                self._last_random = self._random_bits(_RANDOM_BITS)
            if not 0 <= self._last_ms <= _MAX_TIMESTAMP:
                raise ValueError(f"timestamp {self._last_ms} ms does not fit in 48 bits")
            return _encode((self._last_ms << _RANDOM_BITS) | self._last_random)


_default = IdGenerator()


def new_call_id() -> str:
    """A new call id from the process-wide generator (no database round trip)."""
    return _default.new()


def id_timestamp(call_id: str) -> datetime:
    """The creation time (UTC, millisecond precision) held in the first 10 digits of an id."""
    if len(call_id) != ID_LENGTH:
        raise ValueError(f"a call id has {ID_LENGTH} characters, got {len(call_id)}")
    value = 0
    for char in call_id[:10]:
        digit = _DECODE.get(char)
        if digit is None:
            raise ValueError(f"{char!r} is not a Crockford base32 digit")
        value = (value << 5) | digit
    if value > _MAX_TIMESTAMP:
        raise ValueError("the timestamp of a call id fits in 48 bits")
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise ValueError("the timestamp of this call id is after the year 9999") from None
