"""Frame sizes and the streaming re-chunker, with property tests over arbitrary splits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.audio.framing import Framer, frame_bytes
from bridge.audio.g711 import ULAW_SILENCE_BYTE


@pytest.mark.parametrize(
    ("encoding", "rate", "ms", "expected"),
    [
        ("pcmu", 8000, 20, 160),
        ("pcma", 8000, 20, 160),
        ("pcm16", 8000, 20, 320),
        ("pcm16", 16000, 20, 640),
        ("pcm16", 24000, 20, 960),
        ("pcmu", 8000, 10, 80),
        ("pcm16", 22050, 20, 882),
        ("pcm16", 48000, 1, 96),
    ],
)
def test_frame_bytes(encoding: str, rate: int, ms: int, expected: int) -> None:
    assert frame_bytes(encoding, rate, ms) == expected


def test_frame_bytes_default_is_20_ms() -> None:
    assert frame_bytes("pcmu", 8000) == 160


@pytest.mark.parametrize(
    ("encoding", "rate", "ms", "message"),
    [
        ("opus", 8000, 20, "unknown encoding"),
        ("pcm16", 11025, 20, "whole number of samples"),
        ("pcmu", 0, 20, "positive"),
        ("pcmu", 8000, 0, "positive"),
    ],
)
def test_frame_bytes_rejects(encoding: str, rate: int, ms: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        frame_bytes(encoding, rate, ms)


def test_exact_frame_passes_through_uncopied() -> None:
    framer = Framer(160)
    frame = bytes(range(160))
    out = framer.push(frame)
    assert len(out) == 1
    assert out[0] is frame
    assert framer.pending == 0


def test_partial_frames_are_held_then_completed() -> None:
    framer = Framer(4)
    assert framer.push(b"ab") == []
    assert framer.pending == 2
    assert framer.push(b"cdefghij") == [b"abcd", b"efgh"]
    assert framer.pending == 2
    assert framer.push(b"kl") == [b"ijkl"]
    assert framer.pending == 0
    assert framer.push(b"") == []


def test_large_push_with_nothing_pending() -> None:
    framer = Framer(3)
    assert framer.push(b"abcdefgh") == [b"abc", b"def"]
    assert framer.pending == 2
    assert framer.flush() == b"gh"


def test_returned_frames_are_immutable_copies() -> None:
    framer = Framer(2)
    framer.push(b"a")
    frames = framer.push(b"bcd")
    assert frames == [b"ab", b"cd"]
    assert all(type(f) is bytes for f in frames)


def test_flush_pads_with_silence_and_resets() -> None:
    framer = Framer(160)
    framer.push(b"\x00" * 100)
    assert framer.flush(pad_byte=ULAW_SILENCE_BYTE) == b"\x00" * 100 + b"\xff" * 60
    assert framer.pending == 0
    assert framer.flush() is None
    assert framer.flush(pad_byte=ULAW_SILENCE_BYTE) is None


def test_reset_drops_held_bytes() -> None:
    framer = Framer(4)
    framer.push(b"abc")
    framer.reset()
    assert framer.pending == 0
    assert framer.push(b"wxyz") == [b"wxyz"]


def test_frame_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Framer(0)


@given(
    size=st.integers(min_value=1, max_value=40),
    chunks=st.lists(st.binary(max_size=100), max_size=30),
)
@settings(deadline=None)
def test_any_split_gives_the_frames_of_the_whole(size: int, chunks: list[bytes]) -> None:
    whole = b"".join(chunks)
    framer = Framer(size)
    frames: list[bytes] = []
    for chunk in chunks:
        frames += framer.push(chunk)
        assert 0 <= framer.pending < size
    end = len(whole) - len(whole) % size
    assert frames == [whole[i : i + size] for i in range(0, end, size)]
    assert frames == Framer(size).push(whole)
    assert framer.pending == len(whole) % size
    assert framer.flush() == (whole[end:] or None)
    assert framer.pending == 0


@given(size=st.integers(min_value=1, max_value=40), data=st.binary(min_size=1, max_size=100))
@settings(deadline=None)
def test_padded_flush_is_always_one_whole_frame(size: int, data: bytes) -> None:
    framer = Framer(size)
    framer.push(data)
    tail = framer.flush(pad_byte=0xD5)
    if len(data) % size:
        assert tail is not None
        assert len(tail) == size
        assert tail.startswith(data[len(data) - len(data) % size :])
    else:
        assert tail is None
