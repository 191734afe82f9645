"""Fixed-size audio framing: how many bytes 20 ms is, and a streaming re-chunker.

Carriers expect audio in whole frames (Twilio plays 20 ms μ-law = 160 bytes comfortably; some
carriers reject anything else), while engines send deltas of arbitrary length. :class:`Framer`
turns any sequence of chunks into whole frames and holds the remainder. It adds no delay beyond
holding at most ``frame_bytes - 1`` bytes until the rest of their frame arrives, and costs
≈ 0.1 µs per push when a whole frame arrives with nothing pending (the usual case).
"""

from __future__ import annotations

__all__ = ["BYTES_PER_SAMPLE", "Framer", "frame_bytes"]

BYTES_PER_SAMPLE: dict[str, int] = {"pcmu": 1, "pcma": 1, "pcm16": 2}
"""Bytes per mono sample for each encoding name."""


def frame_bytes(encoding: str, sample_rate: int, ms: int = 20) -> int:
    """Bytes in ``ms`` milliseconds of mono ``encoding`` audio at ``sample_rate``.

    ``frame_bytes("pcmu", 8000)`` is 160, ``frame_bytes("pcm16", 24000)`` is 960. Raises
    :class:`ValueError` for an unknown encoding or a duration that is not a whole number of
    samples.
    """
    try:
        width = BYTES_PER_SAMPLE[encoding]
    except KeyError:
        known = ", ".join(sorted(BYTES_PER_SAMPLE))
        raise ValueError(f"unknown encoding {encoding!r} (known: {known})") from None
    if sample_rate <= 0 or ms <= 0:
        raise ValueError(f"sample_rate and ms must be positive, got {sample_rate} and {ms}")
    samples, rest = divmod(sample_rate * ms, 1000)
    if rest:
        raise ValueError(f"{ms} ms at {sample_rate} Hz is not a whole number of samples")
    return samples * width


class Framer:
    """Re-chunk a byte stream into frames of exactly ``frame_bytes`` bytes.

    :meth:`push` returns every frame completed by the new data and keeps the remainder
    (:attr:`pending` bytes, always fewer than one frame). Pushing exactly one frame while nothing
    is pending returns that very object, uncopied, which is the common case on a carrier leg.
    Any split of the same byte stream yields the same frames.
    """

    __slots__ = ("_buf", "frame_bytes")

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes <= 0:
            raise ValueError(f"frame_bytes must be positive, got {frame_bytes}")
        self.frame_bytes = frame_bytes
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of their frame (0 ≤ pending < frame_bytes)."""
        return len(self._buf)

    def push(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return the frames it completes, oldest first (possibly none)."""
        size = self.frame_bytes
        buf = self._buf
        if not buf:
            if len(data) == size:
                return [data]
            if len(data) < size:
                buf += data
                return []
            src: bytes | bytearray = data
        else:
            buf += data
            if len(buf) < size:
                return []
            src = buf
        end = len(src) - len(src) % size
        frames = [bytes(src[i : i + size]) for i in range(0, end, size)]
        if src is buf:
            del buf[:end]
        else:
            buf += src[end:]
        return frames

    def flush(self, pad_byte: int | None = None) -> bytes | None:
        """Return the held partial frame and reset; ``None`` when nothing is held.

        With ``pad_byte`` (e.g. ``ULAW_SILENCE_BYTE``) the partial frame is padded to a whole
        frame; without it the short remainder is returned as is.
        """
        if not self._buf:
            return None
        held = bytes(self._buf)
        self._buf.clear()
        if pad_byte is not None:
            held += bytes([pad_byte]) * (self.frame_bytes - len(held))
        return held

    def reset(self) -> None:
        """Drop any held bytes (e.g. on barge-in, when queued audio is discarded)."""
        self._buf.clear()
