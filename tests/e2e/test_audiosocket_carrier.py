"""Asterisk AudioSocket over TCP through the real server's listener to the offline demo agent.

AudioSocket has no marks: the bridge paces its audio at real time and counts what it has sent
as heard. The wire checks the pacing (never more than 60 ms ahead of real time, every message
20 ms), so a bridge that bursts fails here as it would fail on a real Asterisk.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.simulate.caller import SimulatedCaller
from bridge.simulate.carriers.audiosocket import AudioSocketWire
from tests.e2e import carrier_suite as suite
from tests.e2e.conftest import Bridge

pytestmark = pytest.mark.speech

SETTINGS = {"audiosocket_port": 0}


def audiosocket_caller(bridge: Bridge) -> SimulatedCaller:
    host, port = bridge.app.state.audiosocket_address
    return SimulatedCaller(f"tcp://{host}:{port}", AudioSocketWire())


def call_uuid(caller: SimulatedCaller) -> str:
    assert isinstance(caller.wire, AudioSocketWire)
    return caller.wire.uuid


def paced(caller: SimulatedCaller) -> AudioSocketWire:
    wire = caller.wire
    assert isinstance(wire, AudioSocketWire)
    assert wire.problems == [], wire.problems[:5]
    return wire


async def test_audiosocket_conversation(tmp_path: Path) -> None:
    made: list[SimulatedCaller] = []

    def caller(bridge: Bridge) -> SimulatedCaller:
        made.append(audiosocket_caller(bridge))
        return made[-1]

    call = await suite.conversation_call(tmp_path, caller, call_uuid, settings=SETTINGS)
    assert call["carrier"] == "audiosocket"
    assert call["end_reason"] == "Asterisk hung up"
    wire = paced(made[0])
    print(f"AudioSocket pacing: at most {wire.most_ahead_ms:.1f} ms ahead of real time")


async def test_audiosocket_barge_in_counts_what_was_sent(tmp_path: Path) -> None:
    made: list[SimulatedCaller] = []

    def caller(bridge: Bridge) -> SimulatedCaller:
        made.append(audiosocket_caller(bridge))
        return made[-1]

    # the bridge's send clock against the caller's play clock: one frame in flight, plus jitter
    await suite.barge_in_call(tmp_path, caller, call_uuid, tolerance_ms=40, settings=SETTINGS)
    paced(made[0])


async def test_audiosocket_dtmf(tmp_path: Path) -> None:
    await suite.dtmf_call(tmp_path, audiosocket_caller, call_uuid, settings=SETTINGS)


async def test_audiosocket_agent_hang_up_sends_the_hangup_message(tmp_path: Path) -> None:
    _, caller = await suite.hangup_by_agent_call(
        tmp_path, audiosocket_caller, call_uuid, settings=SETTINGS
    )
    assert caller.hung_up_by_bridge == "AudioSocket hang-up"
    paced(caller)
