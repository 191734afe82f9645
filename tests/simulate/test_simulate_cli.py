"""``callbridge simulate`` end to end against the in-test bridge, journal over httpx.MockTransport."""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest

from bridge.audio.g711 import ulaw_to_pcm16
from bridge.audio.wav import read_wav, write_wav
from bridge.simulate.cli import add_parser, default_api_url, run_simulate

SILENCE = b"\xff" * 160
CALL_ID = "01JCALL0000000000000000000"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="callbridge")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["simulate", *argv])


def caller_wav(tmp_path: Path, seconds: float = 0.4) -> Path:
    """A tone as a 16 kHz *stereo* WAV, so the command must downmix and resample."""
    t = np.arange(int(seconds * 16000)) / 16000
    mono = (6000 * np.sin(2 * np.pi * 300 * t)).astype("<i2")
    path = tmp_path / "caller.wav"
    write_wav(path, np.repeat(mono, 2).tobytes(), 16000, channels=2)
    return path


def answering(make_tone, *, close_after: bool = False):
    """Greets, then answers each caller utterance 200 ms (10 silent frames) after it ends."""

    async def behaviour(bridge) -> None:
        await bridge.send_audio(make_tone(0.2))
        await bridge.send_mark("greeting")
        while True:
            await asyncio.sleep(0.005)
            frames = [f for _, f, _ in bridge.media()]
            voiced = [i for i, f in enumerate(frames) if f != SILENCE]
            if voiced and len(frames) - 1 - voiced[-1] >= 10:
                break
        if close_after:
            await bridge.ws.close()
            return
        await bridge.send_audio(make_tone(0.3))
        await bridge.send_mark("reply")

    return behaviour


def journal(call_sid: list[str], *, status: int = 200) -> httpx.MockTransport:
    detail = {
        "call": {"id": CALL_ID, "status": "completed", "end_reason": "caller hung up"},
        "transcript": [
            {"role": "agent", "text": "Hello, how can I help?", "time_in_call_secs": 0.1},
            {"role": "user", "text": "Where is my order?", "time_in_call_secs": 1.2},
            {
                "role": "agent",
                "text": "Let me check.",
                "time_in_call_secs": 2.0,
                "interrupted": True,
            },
        ],
        "events": [{"kind": "call.started"}, {"kind": "barge_in"}, {"kind": "barge_in"}],
        "tool_calls": [{"name": "lookup_order"}],
    }
    detail["call"]["ended_at"] = "2025-01-01T00:00:02Z"

    def handler(request: httpx.Request) -> httpx.Response:
        if status != 200:
            return httpx.Response(status)
        if request.url.path == "/v1/calls":
            call_sid.append(request.url.params["call_sid"])
            return httpx.Response(200, json={"calls": [{"id": CALL_ID}]})
        assert request.url.path == f"/v1/calls/{CALL_ID}"
        return httpx.Response(200, json=detail)

    return httpx.MockTransport(handler)


async def test_test_call_prints_figures_transcript_and_heard_audio(
    serve_bridge, make_tone, tmp_path, capsys
) -> None:
    asked_for: list[str] = []
    out = tmp_path / "heard.wav"
    async with serve_bridge(answering(make_tone)) as bridge:
        args = parse(
            "--url", bridge.url, "--wav", str(caller_wav(tmp_path)), "--agent", "sales",
            "--param", "lang=en", "--quiet", "0.8", "--out-wav", str(out), "--wait-greeting", "0.3",
        )  # fmt: skip
        code = await run_simulate(args, transport=journal(asked_for))
    printed = capsys.readouterr().out
    print(printed)
    assert code == 0
    (start,) = bridge.events("start")
    assert start["start"]["customParameters"] == {"agent": "sales", "lang": "en"}
    assert asked_for == [start["start"]["callSid"]]
    assert bridge.events("stop")  # the caller hung up
    assert sorted(f["mark"]["name"] for f in bridge.events("mark")) == ["greeting", "reply"]
    greeting = int(re.search(r"greeting latency: (\d+) ms", printed)[1])
    assert 0 <= greeting < 100
    turn = int(re.search(r"turn 1 response latency: (\d+) ms", printed)[1])
    assert 200 <= turn < 320
    assert f"p50 response latency: {turn} ms over 1 turn(s)" in printed
    assert "caller  0.40 s from caller.wav (16000 Hz → 8 kHz μ-law)" in printed
    assert "caller hung up after 0.8 s of agent quiet" in printed
    assert "[  1.2s] user: Where is my order?" in printed
    assert "[  2.0s] agent: Let me check. (interrupted)" in printed
    assert "events: 3 (barge_in 2, call.started 1)" in printed
    assert "tool calls: 1 (lookup_order)" in printed
    pcm, rate = read_wav(out)
    assert rate == 8000
    assert pcm == ulaw_to_pcm16(make_tone(0.2) + make_tone(0.3))


async def test_bridge_hanging_up_ends_the_call(serve_bridge, make_tone, tmp_path, capsys) -> None:
    async with serve_bridge(answering(make_tone, close_after=True)) as bridge:
        args = parse("--url", bridge.url, "--wav", str(caller_wav(tmp_path)), "--fast")
        code = await run_simulate(args, transport=journal([], status=503))
    printed = capsys.readouterr().out
    assert code == 0  # the greeting was heard; the bridge moving on is TwiML continuing
    assert "the bridge closed the stream (code 1000)" in printed
    assert "journal: not available" in printed
    assert bridge.events("stop") == []


async def test_silent_agent_fails_the_test_call(serve_bridge, tmp_path, capsys) -> None:
    async with serve_bridge() as bridge:
        args = parse(
            "--url", bridge.url, "--wav", str(caller_wav(tmp_path, 0.1)), "--fast",
            "--silence-after", "0.3", "--no-journal",
        )  # fmt: skip
        code = await run_simulate(args)
    printed = capsys.readouterr().out
    assert code == 1
    assert "no agent audio within 0.3 s after the caller spoke" in printed
    assert "greeting latency: n/a" in printed
    assert "the agent never sent audio" in printed


async def test_call_timeout_and_unwritable_out_wav(serve_bridge, tmp_path, capsys) -> None:
    async with serve_bridge() as bridge:
        args = parse(
            "--url", bridge.url, "--wav", str(caller_wav(tmp_path, 0.1)), "--timeout", "0.3",
            "--wait-greeting", "5", "--no-journal", "--out-wav", str(tmp_path / "no" / "x.wav"),
        )  # fmt: skip
        code = await run_simulate(args)
    captured = capsys.readouterr()
    assert code == 1
    assert "ended   call timeout (0.3 s)" in captured.out
    assert "cannot write" in captured.err


async def test_protocol_violations_fail_the_test_call(serve_bridge, make_tone, tmp_path, capsys):
    async def behaviour(bridge) -> None:
        await bridge.send({"event": "media", "media": {"payload": "//8="}})
        await bridge.send_audio(make_tone(0.1))

    async with serve_bridge(behaviour) as bridge:
        args = parse(
            "--url", bridge.url, "--wav", str(caller_wav(tmp_path, 0.1)), "--fast",
            "--quiet", "0.2", "--silence-after", "0.3", "--no-journal",
        )  # fmt: skip
        code = await run_simulate(args)
    printed = capsys.readouterr().out
    assert code == 1
    assert "broke the twilio protocol 1 time(s)" in printed
    assert "media without streamSid" in printed


async def test_usage_errors_exit_2(tmp_path, capsys) -> None:
    url = "ws://127.0.0.1:9/twilio/media"
    assert await run_simulate(parse("--url", url, "--wav", str(tmp_path / "nope.wav"))) == 2
    assert "WAV file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert await run_simulate(parse("--url", url, "--wav", str(bad))) == 2
    assert "cannot read WAV file" in capsys.readouterr().err
    wav = str(caller_wav(tmp_path))
    assert await run_simulate(parse("--url", url, "--wav", wav, "--param", "novalue")) == 2
    assert "--param expects KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        parse("--wav", wav)
    assert info.value.code == 2


async def test_unreachable_bridge_exits_1_without_traceback(tmp_path, capsys) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = parse("--url", f"ws://127.0.0.1:{port}/twilio/media", "--wav", str(caller_wav(tmp_path)))
    assert await run_simulate(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("callbridge simulate: could not connect to ws://127.0.0.1:")
    assert "Traceback" not in err


def test_default_api_url() -> None:
    assert default_api_url("ws://127.0.0.1:8080/twilio/media") == "http://127.0.0.1:8080"
    assert default_api_url("wss://bridge.example.com/twilio/media") == "https://bridge.example.com"


async def test_journal_shapes_are_read_tolerantly(capsys) -> None:
    """A plain list of calls and an unwrapped detail, with odd entries, still print."""
    from bridge.simulate.cli import _print_journal

    detail = {
        "id": CALL_ID,
        "status": "completed",
        "ended_at": "2025-01-01T00:00:02Z",
        "transcript": [{"role": "user", "text": "hi"}, "junk"],
        "events": [{"type": "custom"}, 3],
    }

    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/v1/calls":
            return httpx.Response(200, json=[{"no": "id"}, {"id": CALL_ID}])
        if asked.count(request.url.path) == 1:  # the journal writer has not finished yet
            return httpx.Response(200, json={**detail, "ended_at": None})
        return httpx.Response(200, json=detail)

    await _print_journal("http://bridge", "CA" + "0" * 32, httpx.MockTransport(handler))
    printed = capsys.readouterr().out
    assert "journal: call 01JCALL0000000000000000000 completed (None)" in printed
    assert "[   ?  ] user: hi" in printed
    assert "events: 1 (custom 1)" in printed
    assert asked == ["/v1/calls", f"/v1/calls/{CALL_ID}"] * 2
