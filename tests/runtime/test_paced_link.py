"""PacedLink: the bridge as the playout buffer of a carrier without marks (AudioSocket)."""

from __future__ import annotations

import asyncio

from bridge.carriers.audiosocket.codec import AudioSocketCodec, message
from bridge.runtime.link import DirectLink, PacedLink, make_link
from tests.waiting import until

FRAME = b"\x01\x00" * 160  # 20 ms of slin at 8 kHz


class Recorder:
    def __init__(self) -> None:
        self.log: list[tuple[float, str]] = []

    async def send(self, frame: str | bytes) -> None:
        assert isinstance(frame, bytes)
        self.log.append((asyncio.get_running_loop().time(), f"audio:{frame[3]}"))

    async def on_mark(self, name: str) -> None:
        self.log.append((asyncio.get_running_loop().time(), f"mark:{name}"))


def codec() -> AudioSocketCodec:
    made = AudioSocketCodec()
    made.parse(message(0x01, bytes(16)))
    return made


async def test_frames_leave_on_an_absolute_schedule_and_marks_follow_their_audio() -> None:
    rec = Recorder()
    link = PacedLink(rec, codec(), rec.on_mark)
    for n in range(10):
        await link.play(bytes([n, 0]) * 160)
        await link.mark(f"m{n}")
    await until(lambda: len(rec.log) == 20, 5, "ten frames and ten marks")
    assert [what for _, what in rec.log] == [
        x for n in range(10) for x in (f"audio:{n}", f"mark:m{n}")
    ]
    sent = [at for at, what in rec.log if what.startswith("audio")]
    # never early: frame k leaves no sooner than k · 20 ms after the first
    assert all(at - sent[0] >= k * 0.020 - 0.001 for k, at in enumerate(sent))
    assert link.frames_sent == 10
    link.close()


async def test_clear_drops_unsent_audio_and_answers_pending_marks_at_once() -> None:
    rec = Recorder()
    link = PacedLink(rec, codec(), rec.on_mark)
    for n in range(50):  # one second
        await link.play(bytes([n % 200, 0]) * 160)
        await link.mark(f"m{n}")
    await until(lambda: link.frames_sent >= 3, 5, "three frames out")
    await link.clear()
    sent_before = link.frames_sent
    await asyncio.sleep(0.1)
    assert link.frames_sent == sent_before  # nothing after the clear
    marks = [what for _, what in rec.log if what.startswith("mark")]
    assert marks == [f"mark:m{n}" for n in range(50)]  # played ones, then the flushed ones
    await link.play(FRAME)  # the link keeps working after a clear
    await until(lambda: link.frames_sent == sent_before + 1, 2, "the next frame")
    link.close()


async def test_paused_paced_link_holds_audio_until_resumed() -> None:
    rec = Recorder()
    link = PacedLink(rec, codec(), rec.on_mark)
    await link.pause()
    await link.play(FRAME)
    await asyncio.sleep(0.06)
    assert rec.log == []
    await link.resume()
    await until(lambda: link.frames_sent == 1, 2, "the held frame")
    link.close()


async def test_make_link_follows_the_codec() -> None:
    rec = Recorder()
    assert isinstance(make_link(rec, codec(), rec.on_mark), PacedLink)
    from bridge.carriers.telnyx.codec import TelnyxCodec

    assert isinstance(make_link(rec, TelnyxCodec(), rec.on_mark), DirectLink)
