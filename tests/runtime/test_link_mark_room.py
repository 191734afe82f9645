"""DirectLink with a carrier that tracks only so many marks (``codec.max_marks``, jambonz: 30):
frames wait, in order, for room; answers and clears make room; a carrier that stops answering
is written off after ``mark_wait_s`` instead of muting the agent."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.base import CarrierCodec, Frame
from bridge.runtime.link import DirectLink
from bridge.session import events as ev


class Codec(CarrierCodec):
    carrier = "test"
    max_marks: int | None = 2

    def parse(self, data: str | bytes) -> ev.CarrierEvent | None:
        return None

    def media(self, payload: bytes) -> Frame:
        return payload

    def mark(self, name: str) -> Frame:
        return "mark:" + name

    def clear(self) -> Frame:
        return "clear"


class Socket:
    def __init__(self) -> None:
        self.sent: list[Frame] = []

    async def send(self, frame: Frame) -> None:
        self.sent.append(frame)


def link(room: int | None = 2, wait_s: float = 60.0) -> tuple[DirectLink, Socket]:
    codec = Codec()
    codec.max_marks = room
    socket = Socket()
    return DirectLink(socket, codec, mark_wait_s=wait_s), socket


async def play(target: DirectLink, n: int, first: int = 0) -> None:
    for i in range(first, first + n):
        await target.play(bytes([i]))
        await target.mark(f"m{i}")


async def test_frames_wait_for_room_and_leave_in_order_as_marks_are_answered() -> None:
    target, socket = link(room=2)
    await play(target, 4)
    assert socket.sent == [b"\x00", "mark:m0", b"\x01", "mark:m1", b"\x02"]  # m2 waits
    await target.answered("m0")
    assert socket.sent[5:] == ["mark:m2", b"\x03"]
    await target.answered("m7")  # unknown: nothing
    assert len(socket.sent) == 7
    await target.answered("m2")  # settles m1 too (the carrier plays in order)
    assert socket.sent[7:] == ["mark:m3"]
    assert target.held_max == 3  # m2, b3, m3


async def test_a_clear_drops_held_audio_and_makes_room_for_held_marks() -> None:
    target, socket = link(room=1)
    await play(target, 3)
    assert socket.sent == [b"\x00", "mark:m0", b"\x01"]
    await target.clear()
    assert socket.sent[3:] == ["clear", "mark:m1"]  # m2 waits for m1's answer; b"\x02" dropped
    await target.answered("m1")
    assert socket.sent[5:] == ["mark:m2"]


async def test_xoff_still_holds_everything_and_xon_respects_the_room() -> None:
    target, socket = link(room=1)
    await target.pause()
    await play(target, 2)
    assert socket.sent == []
    await target.resume()
    assert socket.sent == [b"\x00", "mark:m0", b"\x01"]


async def test_no_limit_means_nothing_is_held() -> None:
    target, socket = link(room=None)
    await play(target, 50)
    assert len(socket.sent) == 100 and target.held_max == 0


async def test_a_carrier_that_stops_answering_gets_no_limit_until_it_answers_again() -> None:
    target, socket = link(room=2, wait_s=0.05)
    await play(target, 3)
    assert socket.sent[-1] == b"\x02"  # m2 waits
    await asyncio.sleep(0.08)
    assert socket.sent[5:] == ["mark:m2"]
    assert (target.marks_written_off, target.lifted) == (2, True)
    await play(target, 2, first=3)  # still no limit
    assert socket.sent[6:] == [b"\x03", "mark:m3", b"\x04", "mark:m4"]
    await target.answered("m3")  # it answers again: the limit is back, m4 pending
    assert not target.lifted
    await play(target, 2, first=5)
    assert socket.sent[10:] == [b"\x05", "mark:m5", b"\x06"]  # m6 waits for room
    target.close()


async def test_without_a_limit_nothing_is_remembered_past_the_room_while_lifted() -> None:
    target, _ = link(room=2, wait_s=0.01)
    await play(target, 3)
    await asyncio.sleep(0.03)
    await play(target, 40)
    assert len(target._unanswered) == 2 and target.lifted
    target.close()


async def test_an_answer_restarts_the_wait_and_close_stops_it() -> None:
    target, _ = link(room=1, wait_s=0.06)
    await play(target, 3)
    await asyncio.sleep(0.04)
    await target.answered("m0")  # progress at 40 ms: a fresh 60 ms wait for m1
    await asyncio.sleep(0.04)
    assert target.marks_written_off == 0
    target.close()
    await asyncio.sleep(0.05)
    assert target.marks_written_off == 0


class Silent(Codec):
    """A carrier without mark or clear frames (``None``): nothing to send, nothing to count."""

    def mark(self, name: str) -> Frame | None:  # type: ignore[override]
        return None

    def clear(self) -> Frame | None:  # type: ignore[override]
        return None


async def test_a_codec_without_mark_or_clear_frames_holds_nothing() -> None:
    socket = Socket()
    target = DirectLink(socket, Silent())
    for i in range(5):
        await target.play(bytes([i]))
        await target.mark(f"m{i}")
    await target.clear()
    assert socket.sent == [bytes([i]) for i in range(5)] and target.held_max == 0


class SlowSocket(Socket):
    async def send(self, frame: Frame) -> None:
        await asyncio.sleep(0.001)
        self.sent.append(frame)


async def test_answers_during_a_release_do_not_start_a_second_one() -> None:
    """Two releases at once could interleave frames: the running one takes the new room."""
    codec = Codec()
    codec.max_marks = 2
    socket = SlowSocket()
    target = DirectLink(socket, codec)
    for i in range(4):
        await target.play(bytes([i]))
        await target.mark(f"m{i}")
    assert socket.sent[-1] == b"\x02"  # m2, b3, m3 held
    first = asyncio.create_task(target.answered("m0"))  # releases m2 (slowly), then b3…
    await asyncio.sleep(0)
    await target.answered("m1")  # room while the first release runs: it takes it itself
    await first
    assert socket.sent == [
        b"\x00",
        "mark:m0",
        b"\x01",
        "mark:m1",
        b"\x02",
        "mark:m2",
        b"\x03",
        "mark:m3",
    ]


ops = st.lists(st.sampled_from(["chunk", "answer", "clear"]), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(1, 5))
def test_any_interleaving_keeps_order_loses_no_mark_and_never_exceeds_the_room(
    script: list[str], room: int
) -> None:
    """Audio leaves in order, each chunk at most once (a clear drops held audio); every mark
    leaves exactly once, in order, as answers come; never more than ``room`` are unanswered."""

    async def run() -> None:
        target, socket = link(room=room)
        n = 0

        def sent_marks() -> list[int]:
            return [int(f[6:]) for f in socket.sent if isinstance(f, str) and f[:5] == "mark:"]

        async def answer_oldest() -> None:
            if target._unanswered:
                await target.answered(target._unanswered[0])

        for op in script:
            if op == "chunk":
                await target.play(n.to_bytes(2, "big"))
                await target.mark(f"m{n}")
                n += 1
            elif op == "answer":
                await answer_oldest()
            else:
                await target.clear()
            assert len(target._unanswered) <= room
        for _ in range(n):  # the carrier plays everything out
            await answer_oldest()
        assert sent_marks() == list(range(n))
        audio = [int.from_bytes(f, "big") for f in socket.sent if isinstance(f, bytes)]
        assert audio == sorted(set(audio))
        if "clear" not in script:
            assert audio == list(range(n))
        target.close()

    asyncio.run(run())
