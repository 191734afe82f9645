"""Stamps survive a round trip through bytes, and anything else reads as unstamped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.stamp import (
    DOWN,
    FRAME_BYTES,
    MAGIC,
    STAMP_BYTES,
    UP,
    Stamp,
    Stamper,
    read_stamp,
    read_stamps,
    stamp_frame,
)


def test_frame_layout() -> None:
    frame = stamp_frame(UP, 7, 42, 1_234_567)
    assert len(frame) == FRAME_BYTES
    assert frame.startswith(MAGIC)
    assert frame[STAMP_BYTES:] == b"\xff" * (FRAME_BYTES - STAMP_BYTES)
    assert read_stamp(frame) == Stamp(UP, 7, 42, 1_234_567)


@given(
    kind=st.sampled_from([UP, DOWN]),
    call=st.integers(0, 0xFFFF),
    seq=st.integers(0, 0xFFFFFFFF),
    t_us=st.integers(0, (1 << 48) - 1),
)
def test_round_trip(kind: int, call: int, seq: int, t_us: int) -> None:
    assert read_stamp(stamp_frame(kind, call, seq, t_us)) == Stamp(kind, call, seq, t_us)


def test_time_wraps_at_48_bits() -> None:
    assert read_stamp(stamp_frame(UP, 0, 0, (1 << 48) + 5)) == Stamp(UP, 0, 0, 5)


def test_unstamped_and_short_frames() -> None:
    assert read_stamp(b"\xff" * FRAME_BYTES) is None
    assert read_stamp(stamp_frame(UP, 1, 2, 3)[: STAMP_BYTES - 1]) is None
    broken = bytearray(stamp_frame(UP, 1, 2, 3))
    broken[1] ^= 0x01
    assert read_stamp(bytes(broken)) is None


def test_stamper_matches_stamp_frame() -> None:
    stamper = Stamper(DOWN, 3, frames=5)
    audio = stamper.fill(100, 999)
    assert len(audio) == 5 * FRAME_BYTES
    assert audio == b"".join(stamp_frame(DOWN, 3, 100 + j, 999) for j in range(5))
    assert read_stamps(audio) == [Stamp(DOWN, 3, 100 + j, 999) for j in range(5)]
    # the buffer is reused: a second fill must not leak the first one's stamps
    assert read_stamps(stamper.fill(7, 1000, frames=2)) == [
        Stamp(DOWN, 3, 7, 1000),
        Stamp(DOWN, 3, 8, 1000),
    ]


def test_stamper_bounds() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Stamper(UP, 0, frames=0)
    with pytest.raises(ValueError, match=r"1\.\.2"):
        Stamper(UP, 0, frames=2).fill(0, 0, frames=3)


def test_read_stamps_skips_partial_tail_and_unstamped() -> None:
    audio = stamp_frame(UP, 1, 0, 10) + b"\xff" * FRAME_BYTES + stamp_frame(UP, 1, 2, 30)[:50]
    assert read_stamps(audio) == [Stamp(UP, 1, 0, 10), None]
