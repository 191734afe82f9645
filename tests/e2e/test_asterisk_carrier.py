"""Asterisk ``chan_websocket`` through the real server to the offline demo agent.

The caller is the Asterisk wire (subprotocol ``media``, binary media, plain-text or JSON
control), played on the simulator's clock; it answers ``MARK_MEDIA`` when playback reaches the
mark, answers nothing after ``FLUSH_MEDIA`` (as Asterisk), and runs XOFF/XON flow control on its
playback queue. Plain-text channels carry the agent in the URL (``?agent=demo``, as
``websocket_client.conf`` or ``v()`` would); JSON channels carry it as a channel variable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import bridge.runtime.call as runtime_call
from bridge.carriers.base import CarrierCodec
from bridge.runtime.link import CarrierLink, DirectLink, FrameSocket, MarkCallback, make_link
from bridge.simulate.caller import SimulatedCaller
from bridge.simulate.carriers.asterisk import AsteriskWire
from tests.e2e import carrier_suite as suite
from tests.e2e.conftest import Bridge, greeting
from tests.e2e.test_offline_engine import GREETING, hear
from tests.speech import word_ratio
from tests.waiting import until

pytestmark = pytest.mark.speech

SORRY = "sorry i did not catch that"


def asterisk_caller(
    control: str = "plain", **wire_options: Any
) -> Callable[[Bridge], SimulatedCaller]:
    """A caller factory for the suite: the Asterisk wire with ``control`` format."""

    def make(bridge: Bridge) -> SimulatedCaller:
        wire = AsteriskWire(control=control, **wire_options)
        if control == "json":
            params = {"_agent": "demo", "caller_name": "Ada"}  # `_`: inherited by the channel
            return SimulatedCaller(bridge.url("/asterisk/media"), wire, custom_parameters=params)
        url = bridge.url("/asterisk/media?agent=demo&caller_name=Ada")
        return SimulatedCaller(url, wire)

    return make


def channel_id(caller: SimulatedCaller) -> str:
    assert isinstance(caller.wire, AsteriskWire)
    return caller.wire.channel_id


def wire_of(caller: SimulatedCaller) -> AsteriskWire:
    assert isinstance(caller.wire, AsteriskWire)
    return caller.wire


@pytest.mark.parametrize("control", ["plain", "json"])
async def test_asterisk_conversation(tmp_path: Path, control: str) -> None:
    made: list[SimulatedCaller] = []

    def make(bridge: Bridge) -> SimulatedCaller:
        made.append(asterisk_caller(control)(bridge))
        return made[-1]

    call = await suite.conversation_call(tmp_path, make, channel_id)
    wire = wire_of(made[0])
    assert call["call_sid"] == wire.channel_id
    assert call["stream_sid"] == wire.connection_id
    assert call["agent"] == "demo"
    assert call["context"]["caller_name"] == "Ada"
    assert call["end_reason"] == "carrier closed the stream"  # Asterisk has no stop event
    assert made[0].hung_up_by_bridge is None  # the caller hung up: no HANGUP sent to it
    assert wire.media_frames > 100
    assert wire.media_bytes == 160 * wire.media_frames  # one 20 ms frame per message


async def test_asterisk_barge_in_heard_audio_is_exact(tmp_path: Path) -> None:
    # A MARK_MEDIA follows every 20 ms chunk and is answered when playback reaches it, and the
    # session refines between marks with the clock: the heard figure is good to one chunk.
    # FLUSH_MEDIA answers no mark; the session must cope with the silence.
    await suite.barge_in_call(tmp_path, asterisk_caller("json"), channel_id, tolerance_ms=20)


async def test_asterisk_dtmf_with_30_ms_frames(tmp_path: Path) -> None:
    # ptime 30: 240-byte optimal frames; every message must be whole frames (the wire checks).
    made: list[SimulatedCaller] = []

    def make(bridge: Bridge) -> SimulatedCaller:
        made.append(asterisk_caller("plain", ptime=30)(bridge))
        return made[-1]

    await suite.dtmf_call(tmp_path, make, channel_id)
    wire = wire_of(made[0])
    assert wire.optimal_frame_size == 240
    assert wire.media_frames > 0
    assert wire.media_bytes % 240 == 0


async def test_asterisk_agent_hangs_up_in_band_on_slin16(tmp_path: Path) -> None:
    call, caller = await suite.hangup_by_agent_call(
        tmp_path, asterisk_caller("json", format="slin16"), channel_id
    )
    assert caller.hung_up_by_bridge == "HANGUP"
    hangups = [e for e in caller.timeline if e.kind == "hangup"]
    assert len(hangups) == 1
    wire = wire_of(caller)
    assert wire.optimal_frame_size == 640
    assert wire.media_bytes % 640 == 0
    assert call["context"]["caller_name"] == "Ada"


async def test_asterisk_flow_control_holds_audio_until_xon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MEDIA_XOFF makes the bridge hold audio: no frame lost, none sent until MEDIA_XON.

    Small levels (XOFF at 1 s queued, XON under 0.5 s): the greeting (≈6 s, written in one go)
    trips XOFF at once; its tail was already on the wire (in flight). A key press then makes
    the agent answer while XOFF is in force: that answer must wait in the bridge until XON.
    """
    links: list[CarrierLink] = []

    def spy(socket: FrameSocket, codec: CarrierCodec, on_mark: MarkCallback) -> CarrierLink:
        links.append(make_link(socket, codec, on_mark))
        return links[-1]

    monkeypatch.setattr(runtime_call, "make_link", spy)
    async with suite.demo_bridge(tmp_path) as bridge:
        caller = asterisk_caller("plain", xoff_frames=50, xon_frames=25)(bridge)
        wire = wire_of(caller)
        async with caller.connect():
            await until(lambda: wire.xoff, 15, "MEDIA_XOFF")
            await asyncio.sleep(1.0)  # the answer comes well after the greeting's burst
            assert wire.xoff  # still paused: the greeting plays for seconds
            for digit in "5#":
                await caller.send_dtmf(digit)
            await until(lambda: len(wire.flow_log) >= 2, 15, "MEDIA_XON")
            await caller.wait_until_quiet(quiet_s=1.0, timeout=30)  # the held answer plays
        call = await bridge.call_record(wire.channel_id)

    assert caller.violations == []  # nothing after XOFF but the burst in flight, none dropped
    (xoff, _, _), (xon, greeting_frames, _), *_ = wire.flow_log
    assert (xoff, xon) == ("MEDIA_XOFF", "MEDIA_XON")
    assert wire.flow_log[0][1] < greeting_frames  # XOFF came mid-greeting…
    assert wire.in_flight_frames >= greeting_frames - wire.flow_log[0][1]  # …its tail in flight
    (link,) = links
    assert isinstance(link, DirectLink)
    answer_frames = wire.media_frames - greeting_frames
    assert link.held_max >= 2 * answer_frames > 0  # the whole answer (audio + marks) waited
    # No frame lost: every chunk the session sent (one mark each, numbered m1…mN) arrived.
    marks = caller.marks_echoed
    assert marks == [f"m{i}" for i in range(1, len(marks) + 1)]
    assert wire.media_frames == len(marks) > greeting_frames
    assert caller.arrived_bytes == 160 * len(marks)
    heard = hear(caller.played_ulaw())
    assert word_ratio(heard, f"{GREETING} {SORRY}") >= 0.8, heard
    digits = [e["data"]["digit"] for e in call["events"] if e["kind"] == "dtmf"]
    assert digits == ["5", "#"]


async def test_asterisk_greeting_survives_xoff_at_default_levels(tmp_path: Path) -> None:
    # Asterisk's own levels (XOFF at 900 frames = 18 s): a normal greeting never trips them.
    async with suite.demo_bridge(tmp_path) as bridge:
        caller = asterisk_caller("json")(bridge)
        async with caller.connect():
            heard = hear(await greeting(caller))
    assert caller.violations == []
    assert wire_of(caller).flow_log == []
    assert word_ratio(heard, GREETING) >= 0.8, heard


async def test_asterisk_refuses_opus_with_a_clear_reason(tmp_path: Path) -> None:
    async with suite.demo_bridge(tmp_path) as bridge:  # the default 10 s start timeout
        async with connect(
            bridge.url("/asterisk/media"), subprotocols=[Subprotocol("media")]
        ) as ws:
            assert ws.subprotocol == "media"
            await ws.send(
                "MEDIA_START connection_id:c1 channel:WebSocket/callbridge/0x1 "
                "channel_id:pbx-1.1 format:opus optimal_frame_size:0 ptime:20"
            )
            # refused at once: no dead air until the start timeout
            await until(lambda: ws.close_code is not None, 2, "the bridge to close")
        await bridge.flush_journal()
        (listed,) = (await bridge.http.get("/v1/calls")).json()["calls"]
        detail = (await bridge.http.get(f"/v1/calls/{listed['id']}")).json()
    assert detail["carrier"] == "asterisk"
    assert detail["status"] == "failed"
    assert detail["end_reason"].startswith("start refused: Asterisk format 'opus'")
    messages = [e["data"]["message"] for e in detail["events"] if e["kind"] == "protocol_error"]
    assert len(messages) == 1, messages
    assert "'opus' is not supported" in messages[0]
    assert "c(ulaw)" in messages[0]
