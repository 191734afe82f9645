"""TwilioCaller against an in-test websockets bridge (see conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import statistics
import time

import pytest

from bridge.simulate.caller import SimulatedCallError, TwilioCaller
from bridge.simulate.wire import twilio_signature

SILENCE = b"\xff" * 160


async def test_connected_then_start_with_twilio_fields(serve_bridge) -> None:
    async with serve_bridge() as bridge:
        caller = TwilioCaller(
            bridge.url,
            custom_parameters={"agent": "sales", "lang": "en"},
            extra_headers={"X-Test": "1"},
            auth_token="token",
        )
        async with caller.connect():
            await bridge.wait_for("media")
        await asyncio.wait_for(bridge.closed.wait(), 2)
    assert json.loads(bridge.raw[0]) == {
        "event": "connected",
        "protocol": "Call",
        "version": "1.0.0",
    }
    start = bridge.frames[1][1]
    assert start["event"] == "start"
    assert start["sequenceNumber"] == "1"
    assert start["streamSid"] == start["start"]["streamSid"] == caller.stream_sid
    assert re.fullmatch(r"MZ[0-9a-f]{32}", caller.stream_sid)
    assert re.fullmatch(r"CA[0-9a-f]{32}", start["start"]["callSid"])
    assert re.fullmatch(r"AC[0-9a-f]{32}", start["start"]["accountSid"])
    assert start["start"]["tracks"] == ["inbound"]
    assert start["start"]["customParameters"] == {"agent": "sales", "lang": "en"}
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    assert bridge.headers["X-Test"] == "1"
    assert bridge.headers["X-Twilio-Signature"] == twilio_signature(bridge.url, "token")
    # Every frame after `connected` is numbered 1, 2, 3, … without gaps.
    seqs = [int(f["sequenceNumber"]) for _, f in bridge.frames[1:]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert bridge.frames[-1][1]["event"] == "stop"
    assert caller.violations == []


async def test_realtime_frames_on_absolute_20ms_schedule(serve_bridge) -> None:
    async with serve_bridge() as bridge:
        caller = TwilioCaller(bridge.url)
        async with caller.connect():
            await bridge.wait_for("media", 61, within=3)
    media = bridge.media()[:61]  # 1.2 s of frames
    assert all(len(frame) == 160 and frame == SILENCE for _, frame, _ in media)
    chunks = [int(f["media"]["chunk"]) for _, _, f in media]
    assert chunks == list(range(1, 62))
    assert [int(f["media"]["timestamp"]) for _, _, f in media] == [(c - 1) * 20 for c in chunks]
    assert all(f["media"]["track"] == "inbound" for _, _, f in media)
    times = [t for t, _, _ in media]
    # Baseline: the earliest arrival against the ideal schedule (robust to a late first frame).
    base = min(t - i * 0.02 for i, t in enumerate(times))
    lateness_ms = [(t - base - i * 0.02) * 1000 for i, t in enumerate(times)]
    # Drift: how much later the last frames run than the first ones (medians resist outliers).
    # A naive `sleep(0.02)` loop loses ≈ 0.25 ms a frame here, ≈ 11 ms between these windows.
    drift_ms = statistics.median(lateness_ms[-15:]) - statistics.median(lateness_ms[:15])
    print(
        f"pacing over {len(times)} frames: lateness max {max(lateness_ms):.2f} ms, "
        f"median {statistics.median(lateness_ms):.2f} ms, "
        f"stdev {statistics.pstdev(lateness_ms):.2f} ms, drift {drift_ms:+.2f} ms"
    )
    assert statistics.median(lateness_ms) < 10
    assert max(lateness_ms) < 40  # loaded CI machines stall the loop now and then
    assert abs(drift_ms) < 5


async def test_play_sends_audio_as_padded_frames_then_line_silence(serve_bridge, make_tone) -> None:
    audio = make_tone(0.05)  # 400 B: two full frames and a half
    async with serve_bridge() as bridge:
        caller = TwilioCaller(bridge.url, realtime=False)
        async with caller.connect():
            await caller.play(audio, wait=True)
            await bridge.wait_for("media", 8)
    frames = [frame for _, frame, _ in bridge.media()]
    first = next(i for i, f in enumerate(frames) if f != SILENCE)
    assert b"".join(frames[first : first + 3]) == audio + b"\xff" * 80
    assert all(f == SILENCE for f in frames[first + 3 :])
    kinds = [kind for _, kind, _ in caller.timeline]
    assert "speech" in kinds
    assert caller.frames_sent >= 8


async def test_dtmf_then_stop_and_close(serve_bridge) -> None:
    async with serve_bridge() as bridge:
        caller = TwilioCaller(bridge.url, realtime=False)
        async with caller.connect():
            await caller.send_dtmf("5")
            with pytest.raises(ValueError, match="DTMF"):
                await caller.send_dtmf("x")
            await caller.hang_up()
            await caller.hang_up()  # idempotent
            assert not caller.closed_by_bridge.is_set()
        await asyncio.wait_for(bridge.closed.wait(), 2)
    (dtmf,) = bridge.events("dtmf")
    assert dtmf["dtmf"] == {"track": "inbound_track", "digit": "5"}
    assert dtmf["streamSid"] == caller.stream_sid
    (stop,) = bridge.events("stop")
    assert stop["stop"] == {"accountSid": caller.account_sid, "callSid": caller.call_sid}
    assert bridge.frames[-1][1] is stop  # nothing after stop
    assert not caller.closed_by_bridge.is_set()


async def test_mark_echoed_when_audio_before_it_has_played(serve_bridge, make_tone) -> None:
    sent_at: list[float] = []

    async def behaviour(bridge) -> None:
        await bridge.send_audio(make_tone(1.0))
        await bridge.send_mark("after-1s")
        sent_at.append(time.monotonic())

    async with serve_bridge(behaviour) as bridge:
        caller = TwilioCaller(bridge.url)
        async with caller.connect():
            await bridge.wait_for("mark", within=3)
            assert caller.playing is False
        echo_t, echo = next((t, f) for t, f in bridge.frames if f["event"] == "mark")
    assert echo["mark"] == {"name": "after-1s"}
    assert echo["streamSid"] == caller.stream_sid
    assert set(echo) == {"event", "sequenceNumber", "streamSid", "mark"}
    assert caller.first_agent_audio_at is not None
    delay = echo_t - caller.first_agent_audio_at
    assert delay == pytest.approx(1.0, abs=0.05)
    assert echo_t - sent_at[0] == pytest.approx(1.0, abs=0.05)
    assert bytes(caller.received_audio) == make_tone(1.0)
    assert caller.marks_echoed == ["after-1s"]
    assert caller.violations == []


async def test_clear_flushes_audio_and_echoes_pending_marks_at_once(
    serve_bridge, make_tone
) -> None:
    clear_sent: list[float] = []

    async def behaviour(bridge) -> None:
        await bridge.send_audio(make_tone(0.1))
        await bridge.send_mark("a")
        await bridge.send_audio(make_tone(2.0))
        await bridge.send_mark("b")
        await bridge.send_mark("c")
        await asyncio.sleep(0.5)
        await bridge.send_clear()
        clear_sent.append(time.monotonic())

    async with serve_bridge(behaviour) as bridge:
        caller = TwilioCaller(bridge.url)
        async with caller.connect():
            await bridge.wait_for("mark", 3, within=3)
            await asyncio.sleep(0.3)
            assert not caller.playing
        echoes = [(t, f["mark"]["name"]) for t, f in bridge.frames if f["event"] == "mark"]
    assert [name for _, name in echoes] == ["a", "b", "c"]
    assert echoes[0][0] < clear_sent[0]  # "a" played out at 0.1 s
    for t, _ in echoes[1:]:
        assert t - clear_sent[0] < 0.05  # flushed marks come back at once
    (record,) = caller.clears
    assert record.flushed_marks == ("b", "c")
    assert record.played_bytes == pytest.approx(4000, abs=400)  # ≈ 0.5 s heard
    assert len(caller.received_audio) == record.played_bytes
    assert caller.arrived_bytes == 8 * 2100
    assert ("clear", record.played_bytes) in [(k, d) for _, k, d in caller.timeline]


async def test_violations_recorded_and_valid_frames_still_played(serve_bridge) -> None:
    async def behaviour(bridge) -> None:
        sid = bridge.stream_sid
        wav = base64.b64encode(b"RIFF" + b"\x00" * 40).decode()
        await bridge.send("not json")
        await bridge.send({"event": "sendDigits", "streamSid": sid})
        await bridge.send({"event": "clear", "streamSid": "MZ" + "9" * 32})
        await bridge.send({"event": "media", "media": {"payload": "//8="}})
        await bridge.send({"event": "media", "streamSid": sid, "media": {"payload": "%%%"}})
        await bridge.send({"event": "media", "streamSid": sid, "media": {"payload": wav}})
        await bridge.send_audio(b"\x00" * 160)

    async with serve_bridge(behaviour) as bridge:
        caller = TwilioCaller(bridge.url, realtime=False)
        async with caller.connect():
            await caller.wait_for_agent_audio(160, timeout=2)
    assert len(caller.violations) == 6
    problems = " | ".join(caller.violations)
    for needle in ("not JSON", "unknown event", "wrong streamSid", "without streamSid"):
        assert needle in problems
    assert "base64" in problems
    assert "RIFF" in problems
    assert caller.arrived_bytes == 160


async def test_bridge_closing_first_means_twiml_continues(serve_bridge) -> None:
    async def behaviour(bridge) -> None:
        await bridge.ws.close()

    async with serve_bridge(behaviour) as bridge:
        caller = TwilioCaller(bridge.url)
        async with caller.connect():
            await asyncio.wait_for(caller.closed_by_bridge.wait(), 2)
            with pytest.raises(SimulatedCallError, match="closed"):
                await caller.wait_for_agent_audio(1, timeout=2)
            await caller.wait_until_quiet(5.0, timeout=1)  # returns: nobody left to talk
            await caller.hang_up()
    assert bridge.events("stop") == []
    assert caller.close_code == 1000


async def test_bridge_dropping_the_connection(serve_bridge) -> None:
    async def behaviour(bridge) -> None:
        bridge.ws.transport.abort()  # no closing handshake

    async with serve_bridge(behaviour) as bridge:
        caller = TwilioCaller(bridge.url)

        async def press_after_drop() -> None:
            async with caller.connect():
                await asyncio.wait_for(caller.closed_by_bridge.wait(), 2)
                await caller.send_dtmf("1")

        with pytest.raises(SimulatedCallError, match="the bridge closed the stream"):
            await press_after_drop()
    assert caller.close_code == 1006


async def test_unreachable_bridge_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    caller = TwilioCaller(f"ws://127.0.0.1:{port}/twilio/media")
    with pytest.raises(SimulatedCallError, match="could not connect") as info:
        async with caller.connect():
            pass
    assert info.value.retryable


async def test_latency_figures(serve_bridge, make_tone) -> None:
    """The bridge greets at once, then answers 200 ms after the caller's speech ends."""

    async def behaviour(bridge) -> None:
        await bridge.send_audio(make_tone(0.2))
        while True:  # wait for caller speech followed by 10 silent frames
            await asyncio.sleep(0.005)
            frames = [f for _, f, _ in bridge.media()]
            voiced = [i for i, f in enumerate(frames) if f != SILENCE]
            if voiced and len(frames) - 1 - voiced[-1] >= 10:
                break
        await bridge.send_audio(make_tone(0.3))
        await bridge.send_mark("reply")

    async with serve_bridge(behaviour) as bridge:
        caller = TwilioCaller(bridge.url)
        async with caller.connect():
            await caller.wait_for_agent_audio(1600, timeout=2)  # greeting
            await caller.play(make_tone(0.4, 300), wait=True)
            await caller.wait_for_agent_audio(1600 + 2400, timeout=3)
            await caller.wait_until_quiet(0.2, timeout=3)
            assert not caller.playing
            await asyncio.sleep(0.7)  # let the caller's utterance close (600 ms hangover)
    assert caller.greeting_latency_ms is not None
    assert 0 <= caller.greeting_latency_ms < 100
    (turn,) = caller.turn_latencies_ms
    assert 200 <= turn < 320  # 10 silent frames + scheduling
    kinds = [kind for _, kind, _ in caller.timeline]
    assert kinds.count("speech") == 1
    assert kinds.count("speech_end") == 1
    assert caller.played_ulaw() == make_tone(0.2) + make_tone(0.3)


async def test_wait_helpers_time_out(serve_bridge) -> None:
    async def behaviour(bridge) -> None:
        for _ in range(100):
            await bridge.send_audio(b"\x00" * 160)
            await asyncio.sleep(0.02)

    async with serve_bridge(behaviour) as bridge:
        caller = TwilioCaller(bridge.url, realtime=False)
        async with caller.connect():
            with pytest.raises(TimeoutError, match="B of agent audio"):
                await caller.wait_for_agent_audio(10**9, timeout=0.1)
            with pytest.raises(TimeoutError, match="quiet"):
                await caller.wait_until_quiet(1.0, timeout=0.2)
