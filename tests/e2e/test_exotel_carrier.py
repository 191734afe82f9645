"""Exotel voicebot streams through the real server to the offline demo agent.

The caller is the Exotel wire (snake_case, string sequence numbers and sample rate, caller audio
in 100 ms chunks), played on the simulator's clock, and strict about what Exotel plays: every
``media`` the bridge sends must be a multiple of 320 bytes, 3.2 KB to 100 KB. The bridge sends
big chunks (200 ms at 8 kHz, 400 ms in μ-law) with a mark after each; the session interpolates
between mark echoes, so the heard-audio figure stays as precise as with 20 ms chunks.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bridge.simulate.caller import SimulatedCaller
from bridge.simulate.carriers.exotel import ExotelWire
from tests.e2e import carrier_suite as suite
from tests.e2e.conftest import Bridge

pytestmark = pytest.mark.speech

BARGE_IN_TOLERANCE_MS = 20
"""Same as Twilio's with 20 ms chunks: the marks bound the figure, the clock places it inside a
chunk, so what is left is the mark echo's and the clear's trip time (measured: 0-3 ms here)."""


def exotel_caller(
    bridge: Bridge, *, sample_rate: int = 8000, mulaw: bool = False
) -> SimulatedCaller:
    wire = ExotelWire(sample_rate=sample_rate, mulaw=mulaw)
    query = "" if mulaw else f"?sample-rate={sample_rate}"
    return SimulatedCaller(
        bridge.url("/exotel/media" + query), wire, custom_parameters={"caller_name": "Ada"}
    )


def call_sid(caller: SimulatedCaller) -> str:
    assert isinstance(caller.wire, ExotelWire)
    return caller.wire.call_sid


async def only_call(bridge: Bridge) -> dict[str, Any]:
    """The journal entry of the bridge's only call, once it has ended."""
    for _ in range(200):
        await bridge.flush_journal()
        calls = (await bridge.http.get("/v1/calls")).json()["calls"]
        if calls and calls[0]["ended_at"]:
            (call,) = calls
            return dict((await bridge.http.get(f"/v1/calls/{call['id']}")).json())
        await asyncio.sleep(0.05)
    raise AssertionError("the call never ended in the journal")


def chunk_sizes(caller: SimulatedCaller) -> set[int]:
    """Sizes of the agent's media chunks as heard (μ-law 8 kHz: 8 bytes a millisecond)."""
    return {int(e.detail) for e in caller.timeline if e.kind == "media"}


async def test_exotel_conversation_and_caller_hang_up(tmp_path: Path) -> None:
    made: list[SimulatedCaller] = []

    def caller(bridge: Bridge) -> SimulatedCaller:
        made.append(exotel_caller(bridge))
        return made[-1]

    call = await suite.conversation_call(tmp_path, caller, call_sid)
    assert chunk_sizes(made[0]) == {1600}  # every media 200 ms = 3200 bytes of 8 kHz PCM
    assert call["from_number"] == "09876543210"
    assert call["to_number"] == "08047491899"
    assert call["context"]["caller_name"] == "Ada"  # custom_parameters
    assert call["context"]["sample-rate"] == "8000"  # the URL's query rides along
    assert call["end_reason"] == "Exotel stopped the stream"


async def test_exotel_conversation_at_16k(tmp_path: Path) -> None:
    made: list[SimulatedCaller] = []

    def caller(bridge: Bridge) -> SimulatedCaller:
        made.append(exotel_caller(bridge, sample_rate=16000))
        return made[-1]

    call = await suite.conversation_call(tmp_path, caller, call_sid)
    assert chunk_sizes(made[0]) == {800}  # every media 100 ms = 3200 bytes of 16 kHz PCM
    assert call["context"]["sample-rate"] == "16000"


async def test_exotel_barge_in_heard_audio_is_exact_with_200ms_chunks(tmp_path: Path) -> None:
    await suite.barge_in_call(tmp_path, exotel_caller, call_sid, tolerance_ms=BARGE_IN_TOLERANCE_MS)


async def test_exotel_barge_in_heard_audio_is_exact_with_400ms_mulaw_chunks(
    tmp_path: Path,
) -> None:
    def caller(bridge: Bridge) -> SimulatedCaller:
        return exotel_caller(bridge, mulaw=True)

    await suite.barge_in_call(tmp_path, caller, call_sid, tolerance_ms=BARGE_IN_TOLERANCE_MS)


async def test_exotel_dtmf(tmp_path: Path) -> None:
    await suite.dtmf_call(tmp_path, exotel_caller, call_sid)


async def test_exotel_agent_hang_up_closes_the_stream(tmp_path: Path) -> None:
    """No in-band hang-up and no REST call: closing the socket ends the voicebot applet."""
    call, made = await suite.hangup_by_agent_call(tmp_path, exotel_caller, call_sid)
    assert made.hung_up_by_bridge is None
    assert made.close_code == 1000
    assert not any(e["kind"] == "carrier_error" for e in call["events"])


async def test_exotel_unsupported_rate_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    async with suite.demo_bridge(tmp_path) as bridge:
        async with connect(bridge.url("/exotel/media")) as ws:
            await ws.send(json.dumps({"event": "connected"}))
            start = {
                "stream_sid": "s1",
                "call_sid": "c1",
                "account_sid": "a1",
                "media_format": {"encoding": "audio/x-raw", "sample_rate": "44100"},
            }
            await ws.send(
                json.dumps(
                    {"event": "start", "sequence_number": "1", "stream_sid": "s1", "start": start}
                )
            )
            stop = {"event": "stop", "sequence_number": "2", "stream_sid": "s1", "stop": {}}
            await ws.send(json.dumps(stop))
        detail = await only_call(bridge)
    assert detail["status"] == "failed"
    messages = [e["data"]["message"] for e in detail["events"] if e["kind"] == "protocol_error"]
    assert any("pcm16 at 44100 Hz is not supported" in m for m in messages), messages
