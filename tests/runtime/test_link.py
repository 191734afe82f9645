"""DirectLink flow control (Asterisk MEDIA_XOFF / MEDIA_XON): frames held in order while paused,
sent on resume, held audio dropped by a clear while its marks still go out; a property test
over any sequence of operations."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.carriers.asterisk.codec import AsteriskCodec
from bridge.carriers.base import Frame
from bridge.runtime.link import DirectLink, PacedLink, make_link


class Socket:
    """Records every frame with whether the link was paused when it left."""

    def __init__(self) -> None:
        self.link: DirectLink | None = None
        self.sent: list[Frame] = []
        self.sent_while_paused: list[Frame] = []
        self.pause_at: int | None = None  # pause the link when this many frames have left

    async def send(self, frame: Frame) -> None:
        assert self.link is not None
        if self.link.paused:
            self.sent_while_paused.append(frame)
        self.sent.append(frame)
        if self.pause_at is not None and len(self.sent) == self.pause_at:
            await self.link.pause()  # an XOFF read while resume() was still sending


def asterisk() -> AsteriskCodec:
    codec = AsteriskCodec()
    codec.parse(
        "MEDIA_START connection_id:c1 channel:WebSocket/c/0x1 channel_id:p-1.1 format:ulaw "
        "optimal_frame_size:160 ptime:20"
    )
    return codec


def linked() -> tuple[DirectLink, Socket]:
    socket = Socket()
    link = DirectLink(socket, asterisk())
    socket.link = link
    return link, socket


def audio(n: int) -> bytes:
    return bytes([n % 256]) * 160


async def test_frames_are_held_in_order_while_paused_and_sent_on_resume() -> None:
    link, socket = linked()
    await link.play(audio(1))
    await link.mark("m1")
    await link.pause()
    await link.play(audio(2))
    await link.mark("m2")
    await link.play(audio(3))
    await link.mark("m3")
    assert socket.sent == [audio(1), "MARK_MEDIA m1"]  # nothing left while paused
    assert link.held_max == 4
    await link.resume()
    assert socket.sent == [
        audio(1), "MARK_MEDIA m1", audio(2), "MARK_MEDIA m2", audio(3), "MARK_MEDIA m3",
    ]  # fmt: skip
    await link.play(audio(4))  # nothing held: straight out
    assert socket.sent[-1] == audio(4)
    assert socket.sent_while_paused == []


async def test_a_clear_while_paused_drops_held_audio_but_keeps_its_marks() -> None:
    link, socket = linked()
    await link.pause()
    await link.play(audio(1))
    await link.mark("m1")
    await link.play(audio(2))
    await link.mark("m2")
    await link.clear()
    assert socket.sent == ["FLUSH_MEDIA"]  # the clear itself goes at once
    await link.play(audio(3))  # the next answer, still paused: held behind the marks
    await link.mark("m3")
    await link.resume()
    assert socket.sent == [
        "FLUSH_MEDIA",
        "MARK_MEDIA m1",
        "MARK_MEDIA m2",
        audio(3),
        "MARK_MEDIA m3",
    ]
    assert socket.sent_while_paused == ["FLUSH_MEDIA"]


async def test_an_xoff_during_resume_stops_it_where_it_is() -> None:
    link, socket = linked()
    await link.pause()
    for n in range(1, 4):
        await link.play(audio(n))
        await link.mark(f"m{n}")
    socket.pause_at = 2
    await link.resume()
    assert socket.sent == [audio(1), "MARK_MEDIA m1"]
    await link.play(audio(4))  # queued behind the held frames, not ahead of them
    socket.pause_at = None
    await link.resume()
    assert socket.sent[2:] == [
        audio(2), "MARK_MEDIA m2", audio(3), "MARK_MEDIA m3", audio(4),
    ]  # fmt: skip


async def test_close_forgets_held_frames() -> None:
    link, socket = linked()
    await link.pause()
    await link.play(audio(1))
    link.close()
    await link.resume()
    assert socket.sent == []


async def test_make_link_picks_by_playback_accounting() -> None:
    async def on_mark(name: str) -> None:
        pass

    assert isinstance(make_link(Socket(), asterisk(), on_mark), DirectLink)
    paced = asterisk()
    paced.playback = "paced"
    link = make_link(Socket(), paced, on_mark)
    assert isinstance(link, PacedLink)
    link.close()


OPS = st.lists(
    st.sampled_from(["play", "mark", "pause", "resume", "clear"]), min_size=1, max_size=40
)


@settings(max_examples=300)
@given(OPS)
async def test_any_sequence_keeps_order_loses_only_cleared_held_audio(ops: list[str]) -> None:
    link, socket = linked()
    made: list[Frame] = []  # every media / mark frame, in the order the session made it
    dropped: set[Frame] = set()  # held audio a clear threw away
    n = 0
    for op in ops:
        if op in ("play", "mark"):
            n += 1
            frame: Any = audio(n) if op == "play" else f"MARK_MEDIA m{n}"
            made.append(frame)
            await (link.play(audio(n)) if op == "play" else link.mark(f"m{n}"))
        elif op == "clear":
            dropped |= {f for f in made if isinstance(f, bytes) and f not in socket.sent}
            await link.clear()
        else:
            await (link.pause() if op == "pause" else link.resume())
    await link.resume()
    out = [f for f in socket.sent if f != "FLUSH_MEDIA"]
    assert socket.sent.count("FLUSH_MEDIA") == ops.count("clear")
    assert [f for f in socket.sent_while_paused if f != "FLUSH_MEDIA"] == []
    assert out == [f for f in made if f not in dropped]  # in order, each once
    assert all(isinstance(f, bytes) for f in dropped)  # marks always go out
