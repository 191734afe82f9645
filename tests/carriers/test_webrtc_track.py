"""The browser call's outbound track (:class:`AgentTrack`) on a fake clock: 20 ms frames, audio
cut byte for byte, silence, marks answered when reached, clear, μ-law, the absolute schedule and
its re-anchoring after a stall; and :func:`check_offer` on real aiortc offers and bad ones.

No test reads real time: the track's clock is a :class:`FakeClock` and the module's
``asyncio.sleep`` is replaced by one that records the delay and advances that clock.
"""

from __future__ import annotations

import asyncio
import fractions
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.audio.g711 import ulaw_to_pcm16
from bridge.carriers.webrtc import peer
from bridge.carriers.webrtc.peer import AgentTrack, check_offer

T0 = 1000.0
FRAME = 0.020


class FakeClock:
    """The track's clock; :meth:`sleep` stands in for ``asyncio.sleep`` and moves it on."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] = lambda: None
        """Called as a sleep begins: a test's look at the track while ``recv`` waits."""

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, delay: float) -> None:
        assert delay > 0, f"the track asked to sleep {delay} s"
        self.on_sleep()
        self.sleeps.append(delay)
        self.now += delay


class _AsyncioWithFakeSleep:
    """``peer``'s view of asyncio: everything real except ``sleep``."""

    def __init__(self, sleep: Callable[[float], Coroutine[Any, Any, None]]) -> None:
        self.sleep = sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(peer, "asyncio", _AsyncioWithFakeSleep(fake.sleep))
    return fake


class Recorder:
    """A track with a log of what happened: frames handed out and marks answered, in order."""

    def __init__(self, clock: FakeClock, audio_format: str = "pcm16/16000") -> None:
        self.clock = clock
        self.log: list[tuple[str, Any]] = []
        self.track = AgentTrack(audio_format, self._on_mark, clock=clock)
        self.frames: list[AudioFrame] = []
        self.handed_at: list[float] = []

    def _on_mark(self, name: str) -> None:
        self.log.append(("mark", name))

    async def recv(self) -> bytes:
        frame = await self.track.recv()
        self.frames.append(frame)
        self.handed_at.append(self.clock.now)
        pcm = frame.to_ndarray().tobytes()
        self.log.append(("frame", pcm))
        return pcm


def pcm(value: int, frames: int = 1, rate: int = 16000) -> bytes:
    """``frames`` × 20 ms of one 16-bit sample value."""
    return value.to_bytes(2, "little", signed=True) * (rate // 50 * frames)


SILENCE_16K = bytes(640)


# -- frames ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "rate", "payload_bytes"),
    [
        ("pcmu", 8000, 160),
        ("pcma", 8000, 160),
        ("pcm16/8000", 8000, 320),
        ("pcm16/16000", 16000, 640),
        ("pcm16/24000", 24000, 960),
    ],
)
async def test_frames_are_20_ms_of_s16_mono_with_increasing_pts(
    clock: FakeClock, fmt: str, rate: int, payload_bytes: int
) -> None:
    rec = Recorder(clock, fmt)
    rec.track.push(b"\x10" * payload_bytes * 2)
    for _ in range(4):  # two of audio, two of silence
        await rec.recv()
    samples = rate // 50
    for n, frame in enumerate(rec.frames):
        assert frame.samples == samples
        assert frame.sample_rate == rate
        assert (frame.format.name, frame.layout.name) == ("s16", "mono")
        assert frame.time_base == fractions.Fraction(1, rate)
        assert frame.pts == n * samples
        assert frame.to_ndarray().shape == (1, samples)
    assert rec.track.kind == "audio"
    assert rec.track.audio_frames == 2


async def test_audio_of_odd_sizes_is_cut_into_whole_frames_in_order(clock: FakeClock) -> None:
    rec = Recorder(clock, "pcm16/16000")
    rng = random.Random(7)
    audio = bytes(rng.getrandbits(8) for _ in range(640 * 9))
    sizes = [1, 639, 2, 700, 1000, 3, 1, 0, 17, 1200]
    offset = 0
    for size in sizes:
        rec.track.push(audio[offset : offset + size])
        offset += size
    rec.track.push(audio[offset:])
    assert rec.track.queued_ms == 9 * 20
    out = b"".join([await rec.recv() for _ in range(9)])
    assert out == audio
    assert rec.track.audio_frames == 9
    assert await rec.recv() == SILENCE_16K


async def test_a_partial_frame_waits_for_the_rest(clock: FakeClock) -> None:
    rec = Recorder(clock)
    rec.track.push(pcm(1)[:600])
    assert rec.track.queued_ms == 0
    assert await rec.recv() == SILENCE_16K  # not sent half-filled
    rec.track.push(pcm(1)[600:] + pcm(2)[:10])
    assert rec.track.queued_ms == 20
    assert await rec.recv() == pcm(1)
    assert rec.track.audio_frames == 1


async def test_silence_when_nothing_is_queued(clock: FakeClock) -> None:
    rec = Recorder(clock)
    assert [await rec.recv() for _ in range(3)] == [SILENCE_16K] * 3
    assert rec.track.audio_frames == 0
    rec.track.push(pcm(5, frames=2))
    assert [await rec.recv() for _ in range(4)] == [pcm(5), pcm(5), SILENCE_16K, SILENCE_16K]
    assert rec.track.audio_frames == 2
    assert rec.log == [("frame", f) for f in [SILENCE_16K] * 3 + [pcm(5)] * 2 + [SILENCE_16K] * 2]


async def test_pcmu_is_decoded_to_16_bit_pcm_at_8_khz(clock: FakeClock) -> None:
    rec = Recorder(clock, "pcmu")
    ulaw = bytes(range(256)) + bytes(range(64))  # two frames: every code, then some
    rec.track.push(ulaw)
    out = [await rec.recv() for _ in range(3)]
    assert out[0] + out[1] == ulaw_to_pcm16(ulaw)
    assert out[2] == ulaw_to_pcm16(b"\xff" * 160) == bytes(320)  # μ-law silence decodes to 0
    assert all(f.sample_rate == 8000 and f.samples == 160 for f in rec.frames)


async def test_queued_ms_counts_whole_frames_not_marks(clock: FakeClock) -> None:
    rec = Recorder(clock)
    track = rec.track
    assert track.queued_ms == 0
    track.push(pcm(1, frames=3) + b"\x00" * 100)
    assert track.queued_ms == 60
    track.mark("m1")  # pads the partial frame: one more frame queued
    assert track.queued_ms == 80
    await rec.recv()
    assert track.queued_ms == 60
    track.clear()
    assert track.queued_ms == 0


# -- marks -------------------------------------------------------------------------------------


async def test_a_mark_is_answered_on_the_recv_after_the_last_frame_before_it(
    clock: FakeClock,
) -> None:
    rec = Recorder(clock)
    track = rec.track
    track.push(pcm(1) + pcm(2) + pcm(3))
    track.mark("m1")
    track.push(pcm(4))
    track.mark("m2")
    track.mark("m3")  # nothing between: answered together, in order
    for _ in range(3):
        await rec.recv()
    assert rec.log == [("frame", pcm(1)), ("frame", pcm(2)), ("frame", pcm(3))]
    await rec.recv()
    await rec.recv()
    assert rec.log[3:] == [
        ("mark", "m1"),
        ("frame", pcm(4)),
        ("mark", "m2"),
        ("mark", "m3"),
        ("frame", SILENCE_16K),
    ]
    assert track.audio_frames == 4


async def test_a_mark_is_answered_only_once_the_frame_before_it_is_due(clock: FakeClock) -> None:
    rec = Recorder(clock)
    rec.track.push(pcm(1))
    rec.track.mark("m1")
    await rec.recv()
    waiting: list[tuple[float, list[tuple[str, Any]]]] = []
    clock.on_sleep = lambda: waiting.append((clock.now, list(rec.log)))
    await rec.recv()
    assert waiting == [(T0, [("frame", pcm(1))])]  # not yet answered while recv waits
    assert rec.log[1:] == [("mark", "m1"), ("frame", SILENCE_16K)]
    assert rec.handed_at == [T0, T0 + FRAME]


async def test_a_mark_with_nothing_before_it_is_answered_at_once(clock: FakeClock) -> None:
    rec = Recorder(clock)
    rec.track.mark("m0")
    assert rec.log == []  # answered by the sender, not by mark()
    await rec.recv()
    assert rec.log == [("mark", "m0"), ("frame", SILENCE_16K)]


@pytest.mark.parametrize(
    ("fmt", "partial", "silence"),
    [("pcm16/16000", b"\x01\x02" * 100, b"\x00"), ("pcmu", b"\x12" * 100, b"\xff")],
)
async def test_a_mark_after_a_partial_frame_pads_it_with_silence(
    clock: FakeClock, fmt: str, partial: bytes, silence: bytes
) -> None:
    rec = Recorder(clock, fmt)
    frame_bytes = 640 if fmt == "pcm16/16000" else 160
    rec.track.push(partial)
    rec.track.mark("end of turn")
    padded = partial + silence * (frame_bytes - len(partial))
    expected = padded if fmt != "pcmu" else ulaw_to_pcm16(padded)
    assert await rec.recv() == expected
    await rec.recv()
    assert rec.log[1] == ("mark", "end of turn")
    assert rec.track.audio_frames == 1
    rec.track.push(partial)  # the partial was consumed by the pad, not kept
    rec.track.mark("again")
    assert rec.track.queued_ms == 20


async def test_clear_drops_queued_audio_and_answers_its_marks_at_once_in_order(
    clock: FakeClock,
) -> None:
    rec = Recorder(clock)
    track = rec.track
    track.push(pcm(1, frames=2))
    track.mark("m1")
    track.push(pcm(2, frames=3))
    track.mark("m2")
    track.push(pcm(3)[:100])  # a partial frame, dropped too
    await rec.recv()
    track.clear()
    assert rec.log == [("frame", pcm(1)), ("mark", "m1"), ("mark", "m2")]
    assert track.queued_ms == 0
    assert await rec.recv() == SILENCE_16K
    track.push(pcm(4)[:540])
    track.push(pcm(4)[540:])
    assert await rec.recv() == pcm(4)  # no leftover of the cleared partial frame
    assert rec.log[3:] == [("frame", SILENCE_16K), ("frame", pcm(4))]
    assert track.audio_frames == 2


async def test_clear_with_nothing_queued_answers_nothing(clock: FakeClock) -> None:
    rec = Recorder(clock)
    rec.track.clear()
    assert rec.log == []
    assert await rec.recv() == SILENCE_16K


ops = st.lists(st.one_of(st.integers(0, 1500), st.sampled_from(["mark", "recv"])), max_size=40)


@settings(max_examples=150)
@given(ops)
def test_any_mix_of_pushes_marks_and_recvs_keeps_audio_and_marks_in_step(
    steps: list[int | str],
) -> None:
    """Whatever the sizes pushed and where the marks fall, the frames carry the audio pushed,
    byte for byte (each mark padding the frame before it), and each mark is answered exactly
    when every frame queued before it has been handed out."""
    frame_bytes, fill = 640, iter(range(1, 1 << 30))
    pushed, expected = bytearray(), bytearray()  # expected: whole frames as queued
    frames_before: dict[str, int] = {}  # mark → audio frames queued before it
    with pytest.MonkeyPatch.context() as mp:
        clock = FakeClock()
        mp.setattr(peer, "asyncio", _AsyncioWithFakeSleep(clock.sleep))
        answered: list[tuple[str, int]] = []  # (mark, audio frames handed out by then)
        track = AgentTrack(
            "pcm16/16000", lambda n: answered.append((n, track.audio_frames)), clock=clock
        )
        out = bytearray()

        async def recv() -> None:
            before = track.audio_frames
            frame = await track.recv()
            if track.audio_frames > before:
                out.extend(frame.to_ndarray().tobytes())

        async def run() -> None:
            for step in steps:
                if isinstance(step, int):
                    data = bytes(next(fill) % 255 + 1 for _ in range(step))  # never silence
                    track.push(data)
                    pushed.extend(data)
                elif step == "mark":
                    if pushed:
                        pushed.extend(bytes(-len(pushed) % frame_bytes))
                    expected.extend(pushed)
                    pushed.clear()
                    name = f"m{len(frames_before)}"
                    frames_before[name] = len(expected) // frame_bytes
                    track.mark(name)
                else:
                    await recv()
            whole = len(pushed) - len(pushed) % frame_bytes
            expected.extend(pushed[:whole])
            while track.queued_ms or len(answered) < len(frames_before):
                await recv()

        asyncio.run(run())
    assert bytes(out) == bytes(expected)
    assert answered == list(frames_before.items())


# -- schedule ----------------------------------------------------------------------------------


async def test_the_first_frame_is_handed_at_once_then_one_every_20_ms(clock: FakeClock) -> None:
    rec = Recorder(clock)
    for _ in range(5):
        await rec.recv()
    assert clock.sleeps == pytest.approx([FRAME] * 4, abs=1e-9)
    assert rec.handed_at == pytest.approx([T0 + n * FRAME for n in range(5)], abs=1e-9)


async def test_late_callers_do_not_make_the_schedule_drift(clock: FakeClock) -> None:
    """The sender comes back 0–19 ms after each frame (encoding, sending): the track sleeps only
    what is left until the next slot, so frame n is handed at T0 + n · 20 ms, n = 0 … 49."""
    rec = Recorder(clock)
    rng = random.Random(3)
    lateness = [rng.uniform(0.0, 0.019) for _ in range(50)]
    for late in lateness:
        await rec.recv()
        clock.advance(late)
    assert rec.handed_at == pytest.approx([T0 + n * FRAME for n in range(50)], abs=1e-9)
    assert clock.sleeps == pytest.approx([FRAME - late for late in lateness[:-1]], abs=1e-9)
    assert rec.frames[-1].pts == 49 * 320


async def test_a_short_delay_is_caught_up_on_the_same_grid(clock: FakeClock) -> None:
    rec = Recorder(clock)
    for _ in range(3):
        await rec.recv()  # frames 0–2 at T0 + 0, 20, 40 ms
    clock.advance(0.070)  # frame 3 was due at T0 + 60 ms; the sender comes at T0 + 110 ms
    sleeps_before = len(clock.sleeps)
    for _ in range(5):
        await rec.recv()
    # Frames 3, 4 and 5 (due at 60, 80, 100 ms) go at once; 6 and 7 on their own slots.
    late = T0 + 0.110
    assert rec.handed_at[3:] == pytest.approx(
        [late, late, late, T0 + 6 * FRAME, T0 + 7 * FRAME], abs=1e-9
    )
    assert clock.sleeps[sleeps_before:] == pytest.approx([0.010, FRAME], abs=1e-9)


async def test_a_stall_over_100_ms_starts_a_new_schedule_without_a_burst(
    clock: FakeClock,
) -> None:
    rec = Recorder(clock)
    rec.track.push(pcm(1, frames=10))
    for _ in range(3):
        await rec.recv()
    clock.advance(FRAME + 0.150)  # frame 3 due at T0 + 60 ms; the loop stalls until T0 + 210 ms
    restart = clock.now
    sleeps_before = len(clock.sleeps)
    for _ in range(4):
        await rec.recv()
    assert rec.handed_at[3:] == pytest.approx([restart + n * FRAME for n in range(4)], abs=1e-9)
    assert clock.sleeps[sleeps_before:] == pytest.approx([FRAME] * 3, abs=1e-9)
    assert [f.pts for f in rec.frames] == [n * 320 for n in range(7)]  # no gap in the stream
    assert rec.log == [("frame", pcm(1))] * 7  # nothing skipped


async def test_a_stall_just_under_the_limit_is_caught_up(clock: FakeClock) -> None:
    rec = Recorder(clock)
    await rec.recv()
    clock.advance(FRAME + 0.099)  # 99 ms behind frame 1's slot: below MAX_LATE_S
    for _ in range(6):
        await rec.recv()
    # Frames 1–5 (due at 20 … 100 ms) go at once at 119 ms; frame 6 keeps its slot at 120 ms.
    assert rec.handed_at[1:6] == pytest.approx([T0 + 0.119] * 5, abs=1e-9)
    assert rec.handed_at[6] == pytest.approx(T0 + 6 * FRAME, abs=1e-9)


# -- stop --------------------------------------------------------------------------------------


async def test_recv_after_stop_raises_media_stream_error(clock: FakeClock) -> None:
    rec = Recorder(clock)
    rec.track.push(pcm(1))
    rec.track.mark("m1")
    rec.track.stop()
    assert rec.track.readyState == "ended"
    with pytest.raises(MediaStreamError):
        await rec.track.recv()
    assert rec.log == []


async def test_without_a_clock_the_track_reads_the_loop_time() -> None:
    track = AgentTrack("pcmu", lambda name: None)
    assert track._clock == asyncio.get_running_loop().time  # the real clock, for aiortc
    frame = await track.recv()  # the first frame is due at once: no sleep
    assert frame.samples == 160
    track.stop()


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown audio format 'opus'"):
        AgentTrack("opus", lambda name: None, clock=lambda: 0.0)


# -- check_offer -------------------------------------------------------------------------------


async def offer_of(*kinds: str) -> str:
    pc = RTCPeerConnection()
    try:
        for kind in kinds:
            pc.addTransceiver(kind)
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def test_an_aiortc_offer_passes() -> None:
    check_offer(await offer_of("audio"))
    check_offer(await offer_of("audio"), "offer")
    check_offer(await offer_of("video", "audio"))


async def test_an_answer_is_not_an_offer() -> None:
    sdp = await offer_of("audio")
    with pytest.raises(ValueError, match="expected an SDP offer, not 'answer'"):
        check_offer(sdp, "answer")


async def test_a_video_only_offer_has_no_audio() -> None:
    with pytest.raises(ValueError, match="the offer has no audio stream"):
        check_offer(await offer_of("video"))


async def test_an_offer_without_a_usable_audio_codec() -> None:
    sdp = await offer_of("audio")
    lines = [line for line in sdp.splitlines() if not line.startswith("a=rtpmap:")]
    with pytest.raises(ValueError, match="none of Opus, PCMU or PCMA"):
        check_offer("\r\n".join(lines) + "\r\n")
    g722_only = [
        line for line in sdp.splitlines() if not line.startswith("a=rtpmap:") or "G722" in line
    ]
    with pytest.raises(ValueError, match="none of Opus, PCMU or PCMA"):
        check_offer("\r\n".join(g722_only) + "\r\n")


@pytest.mark.parametrize("sdp", ["garbage", "", "v=0\r\n", "not\nsdp\nat all"])
def test_garbage_fails_with_a_value_error(sdp: str) -> None:
    with pytest.raises(ValueError, match=r"no audio stream|not valid SDP"):
        check_offer(sdp)


@pytest.mark.parametrize(
    "sdp",
    [
        "m=audio\r\n",
        "c=IN IP4\r\n",
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fmtp:111 x\r\n",
    ],
)
def test_every_malformed_offer_fails_with_a_value_error(sdp: str) -> None:
    try:
        check_offer(sdp)
    except ValueError:
        pass
    except Exception as exc:
        raise AssertionError(
            f"check_offer let {type(exc).__name__} out: the offer route answers 500, not 422"
        ) from exc
