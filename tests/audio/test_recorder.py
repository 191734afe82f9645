"""The recording core: caller left, agent right, aligned in call time, taken as it settles."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.audio import g711
from bridge.audio.recorder import WAV_HEADER_BYTES, StereoTimeline, stereo_wav_header
from bridge.audio.transcode import parse_format, silence_byte

RATE = 8000
FRAME = 160  # 20 ms at 8 kHz


def ulaw(value: int, samples: int) -> bytes:
    """``samples`` of a constant PCM level, μ-law coded."""
    return g711.pcm16_to_ulaw(np.full(samples, value, dtype="<i2").tobytes())


def level(value: int) -> int:
    """What a constant level becomes through μ-law."""
    return int(np.frombuffer(g711.ulaw_to_pcm16(ulaw(value, 1)), dtype="<i2")[0])


def channels(pcm: bytes) -> tuple[np.ndarray, np.ndarray]:
    samples = np.frombuffer(pcm, dtype="<i2")
    return samples[0::2], samples[1::2]


def feed_caller(timeline: StereoTimeline, start_s: float, seconds: float, value: int = 0) -> None:
    """Caller frames at real time: each arrives when its 20 ms have passed."""
    for i in range(round(seconds / 0.02)):
        timeline.caller(ulaw(value, FRAME), start_s + (i + 1) * 0.02)


def runs(samples: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of non-zero samples."""
    nonzero = np.concatenate(([0], (samples != 0).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(nonzero))
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2], strict=True)]


# -- the header -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_header_is_what_the_stdlib_wave_module_reads(rate: int) -> None:
    data = np.arange(-500, 500, dtype="<i2").tobytes()  # 500 stereo frames
    header = stereo_wav_header(rate, len(data))
    assert len(header) == WAV_HEADER_BYTES
    with wave.open(io.BytesIO(header + data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, rate)
        assert wav.getnframes() == 500
        assert wav.readframes(500) == data


def test_header_clamps_what_riff_cannot_count() -> None:
    header = stereo_wav_header(8000, 1 << 33)
    assert int.from_bytes(header[4:8], "little") == 0xFFFFFFFF
    assert int.from_bytes(header[40:44], "little") == 0xFFFFFFFF - 36


# -- alignment --------------------------------------------------------------------------------


@given(cuts=st.lists(st.integers(1, 400), max_size=20), data=st.binary(min_size=1, max_size=4000))
@settings(max_examples=60, deadline=None)
def test_the_left_channel_is_exactly_the_callers_audio_however_it_arrives(
    cuts: list[int], data: bytes
) -> None:
    timeline, out, pos, t = StereoTimeline("pcmu"), bytearray(), 0, 0.0
    for cut in [*cuts, len(data)]:
        piece = data[pos : pos + cut]
        pos += len(piece)
        t += len(piece) / RATE  # real time: never a gap
        timeline.caller(piece, t)
        out += timeline.take()
    out += timeline.finish(t)
    left, right = channels(bytes(out))
    assert left.tobytes() == g711.ulaw_to_pcm16(data)
    assert not right.any()


def test_agent_audio_starts_where_the_caller_is_and_queues_behind_itself() -> None:
    timeline = StereoTimeline("pcmu")
    feed_caller(timeline, 0.0, 0.5)
    timeline.agent(ulaw(1000, 2400), 0.5)  # 300 ms, sent at 0.5 s: plays 0.5-0.8 s
    timeline.agent(ulaw(2000, 800), 0.52)  # sent while that plays: 0.8-0.9 s
    feed_caller(timeline, 0.5, 0.7)
    timeline.agent(ulaw(3000, 800), 1.2)  # the agent was quiet: starts now
    feed_caller(timeline, 1.2, 0.3)
    left, right = channels(timeline.take() + timeline.finish(1.5))
    assert len(left) == 12000
    assert not left.any()
    assert runs(right) == [(4000, 7200), (9600, 10400)]
    assert set(right[4000:6400]) == {level(1000)}
    assert set(right[6400:7200]) == {level(2000)}
    assert set(right[9600:10400]) == {level(3000)}


def test_network_jitter_moves_nothing() -> None:
    steady, jittery = StereoTimeline("pcmu"), StereoTimeline("pcmu")
    rng = np.random.default_rng(7)
    for i in range(50):
        arrival = (i + 1) * 0.02
        steady.caller(ulaw(i * 10, FRAME), arrival)
        jittery.caller(ulaw(i * 10, FRAME), arrival + float(rng.uniform(0, 0.15)))
        if i == 20:
            steady.agent(ulaw(500, 800), arrival)
            jittery.agent(ulaw(500, 800), arrival + 0.01)
    assert steady.finish(1.0) == jittery.finish(1.2)


def test_a_clear_drops_the_agent_audio_the_caller_had_not_heard() -> None:
    timeline = StereoTimeline("pcmu")
    feed_caller(timeline, 0.0, 0.2)
    timeline.agent(ulaw(1000, 8000), 0.2)  # a whole second
    timeline.agent(ulaw(2000, 800), 0.25)
    feed_caller(timeline, 0.2, 0.3)
    timeline.clear(0.5)  # barge-in at 0.5 s: 300 ms of it played
    feed_caller(timeline, 0.5, 0.2)
    timeline.agent(ulaw(3000, 800), 0.7)  # the next answer starts now, not after the cut one
    feed_caller(timeline, 0.7, 0.3)
    _, right = channels(timeline.take() + timeline.finish(1.0))
    assert runs(right) == [(1600, 4000), (5600, 6400)]
    assert set(right[5600:6400]) == {level(3000)}


def test_a_clear_after_part_was_taken_cuts_the_rest_only() -> None:
    timeline = StereoTimeline("pcmu")
    timeline.agent(ulaw(1000, 4000), 0.0)
    feed_caller(timeline, 0.0, 0.2)
    first = timeline.take()  # 0-0.2 s, in the middle of the agent's audio
    feed_caller(timeline, 0.2, 0.1)
    timeline.clear(0.3)
    feed_caller(timeline, 0.3, 0.2)
    _, right = channels(first + timeline.take() + timeline.finish(0.5))
    assert runs(right) == [(0, 2400)]


def test_when_the_caller_stream_stops_the_clock_takes_over_and_silence_fills_in() -> None:
    timeline = StereoTimeline("pcmu")
    feed_caller(timeline, 0.0, 1.0, value=1000)
    taken = timeline.take()
    timeline.agent(ulaw(2000, 800), 2.5)  # 1.5 s without caller audio: the clock says 2.5 s
    assert timeline.now(2.5) == 20000
    assert timeline.ready == 0  # nothing settles past the caller's end meanwhile
    feed_caller(timeline, 3.0, 0.5, value=3000)  # the stream resumes at 3 s
    left, right = channels(taken + timeline.take() + timeline.finish(3.5))
    assert len(left) == 28000
    assert runs(left) == [(0, 8000), (24000, 28000)]  # 2 s of silence in between
    assert runs(right) == [(20000, 20800)]


def test_a_short_stop_of_the_caller_closes_up_and_the_agent_with_it() -> None:
    timeline = StereoTimeline("pcmu")
    feed_caller(timeline, 0.0, 1.0, value=1000)
    timeline.agent(ulaw(2000, 800), 1.3)  # the caller has been quiet 300 ms: below max lag
    feed_caller(timeline, 1.5, 0.5, value=3000)
    left, right = channels(timeline.take() + timeline.finish(2.0))
    assert runs(left) == [(0, 12000)]  # no silence inserted...
    assert runs(right) == [(8000, 8800)]  # ...and the agent is where the caller's audio was


def test_finish_drops_unplayed_agent_audio_and_pads_a_stopped_caller() -> None:
    timeline = StereoTimeline("pcmu")
    feed_caller(timeline, 0.0, 0.5)
    timeline.agent(ulaw(1000, 8000), 0.5)
    feed_caller(timeline, 0.5, 0.2)
    left, right = channels(timeline.finish(0.7))  # the caller hung up 200 ms in
    assert len(left) == 5600
    assert runs(right) == [(4000, 5600)]

    stopped = StereoTimeline("pcmu")
    feed_caller(stopped, 0.0, 0.5)
    stopped.agent(ulaw(1000, 800), 2.0)
    left, right = channels(stopped.finish(3.0))  # the caller's stream had stopped at 0.5 s
    assert len(left) == 24000
    assert runs(right) == [(16000, 16800)]


@pytest.mark.parametrize(
    ("fmt", "rate"), [("pcm16/8000", 8000), ("pcm16/16000", 16000), ("pcm16/24000", 24000)]
)
def test_pcm_carriers_keep_their_rate_and_samples(fmt: str, rate: int) -> None:
    timeline = StereoTimeline(fmt)
    assert timeline.rate == rate
    frame = rate // 50
    caller = np.arange(frame, dtype="<i2")
    agent = -np.arange(1, frame * 3 + 1, dtype="<i2")
    timeline.caller(caller.tobytes(), 0.02)
    timeline.agent(agent.tobytes() + b"\x01", 0.02)  # half a sample at the end is dropped
    for i in range(2, 6):
        timeline.caller(caller.tobytes(), i * 0.02)
    left, right = channels(timeline.take() + timeline.finish(0.1))
    assert np.array_equal(left, np.tile(caller, 5))
    assert np.array_equal(right[frame : frame * 4], agent)


def test_alaw_is_decoded_and_padded_with_its_own_silence() -> None:
    timeline = StereoTimeline("pcma")
    frame = g711.pcm16_to_alaw(np.full(FRAME, 1200, dtype="<i2").tobytes())
    timeline.caller(frame, 0.02)
    timeline.caller(frame, 2.02)  # after a 2 s stop
    left, _ = channels(timeline.finish(2.02))
    decoded = np.frombuffer(g711.alaw_to_pcm16(frame), dtype="<i2")
    assert np.array_equal(left[:FRAME], decoded)
    assert np.array_equal(left[-FRAME:], decoded)
    assert set(left[FRAME:-FRAME]) == {8}  # A-law's nearest-to-zero code


def test_memory_stays_small_on_a_long_call() -> None:
    timeline, written = StereoTimeline("pcmu"), 0
    for i in range(60 * 50):  # a minute of frames, the agent talking half of it
        now = (i + 1) * 0.02
        timeline.caller(ulaw(100, FRAME), now)
        if i % 100 < 50:
            timeline.agent(ulaw(1000, FRAME), now)
        if timeline.ready >= 4000:
            written += len(timeline.take())
        assert timeline.ready < 4000
        assert timeline.agent_queued <= timeline.ready + FRAME  # never far ahead of the caller
    written += len(timeline.finish(60.0))
    assert written == 60 * RATE * 4


# -- taking as it settles changes nothing --------------------------------------------------------


Op = tuple[str, float, int, bool]  # kind, time step, samples, take after it


def reference(fmt: str, ops: list[tuple[str, float, bytes]], end: float, lag: float) -> bytes:
    """The same model, written the obvious way: whole arrays, nothing taken until the end."""
    encoding, rate = parse_format(fmt)
    width = 1 if encoding in ("pcmu", "pcma") else 2
    decode = {"pcmu": g711.ulaw_to_pcm16, "pcma": g711.alaw_to_pcm16}.get(encoding, bytes)
    max_lag = round(lag * rate)
    left = bytearray()
    agent: list[tuple[int, bytes]] = []
    agent_end = 0

    def now_of(t: float) -> int:
        clock, caller_end = int(t * rate), len(left) // width
        return clock if clock - caller_end > max_lag else caller_end

    def clear(cut: int) -> None:
        nonlocal agent, agent_end
        agent = [(s, a[: (cut - s) * width]) for s, a in agent if s < cut]
        agent_end = min(agent_end, cut)

    for kind, t, payload in ops:
        if kind == "caller":
            count = len(payload) // width
            clock, caller_end = int(t * rate), len(left) // width
            if clock - caller_end > max_lag:
                left += bytes([silence_byte(fmt)]) * width * max(0, clock - count - caller_end)
            left += payload[: count * width]
        elif kind == "agent" and len(payload) // width:
            start = max(now_of(t), agent_end)
            agent.append((start, payload[: len(payload) // width * width]))
            agent_end = start + len(payload) // width
        elif kind == "clear":
            clear(now_of(t))
    cut = now_of(end)
    clear(cut)
    left += bytes([silence_byte(fmt)]) * width * (cut - len(left) // width)
    samples = np.zeros((cut, 2), dtype="<i2")
    samples[:, 0] = np.frombuffer(decode(bytes(left)), dtype="<i2")
    for start, audio in agent:
        pcm = np.frombuffer(decode(audio), dtype="<i2")
        samples[start : start + len(pcm), 1] = pcm[: cut - start]
    return samples.tobytes()


operations = st.lists(
    st.tuples(
        st.sampled_from(["caller", "caller", "caller", "agent", "agent", "clear"]),
        st.sampled_from([0.0, 0.005, 0.02, 0.02, 0.06, 0.3, 1.2]),
        st.integers(0, 600),
        st.booleans(),
    ),
    min_size=10,
    max_size=80,
)


@given(
    fmt=st.sampled_from(["pcmu", "pcma", "pcm16/8000", "pcm16/16000"]),
    ops=operations,
    seed=st.integers(0, 2**32 - 1),
    lag=st.sampled_from([0.05, 1.0]),
)
@settings(max_examples=400, deadline=None)
def test_taken_piece_by_piece_it_is_the_whole_model(
    fmt: str, ops: list[Op], seed: int, lag: float
) -> None:
    rng = np.random.default_rng(seed)
    width = 1 if fmt in ("pcmu", "pcma") else 2
    timeline, out, t = StereoTimeline(fmt, max_lag_s=lag), bytearray(), 0.0
    script: list[tuple[str, float, bytes]] = []
    for kind, step, samples, take in ops:
        t += step
        payload = rng.integers(0, 256, samples * width, dtype=np.uint8).tobytes()
        script.append((kind, t, payload))
        if kind == "caller":
            timeline.caller(payload, t)
        elif kind == "agent":
            timeline.agent(payload, t)
        else:
            timeline.clear(t)
        if take:
            out += timeline.take()
    out += timeline.finish(t + 0.1)
    assert bytes(out) == reference(fmt, script, t + 0.1, lag)
