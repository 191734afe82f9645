"""The same whole calls on every carrier: the offline demo agent through the real server.

Each carrier's test module builds its simulated caller (its own wire, its own route) and runs
these checks; what differs per carrier is only the wire and the playback-accounting precision.
The agent side has no fake at all (pocketsphinx, the scripted dialog, espeak-ng), and what the
caller hears is recognised again, so audio that came out garbled in either direction fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bridge.simulate.caller import SimulatedCaller
from tests.e2e.conftest import Bridge, greeting
from tests.e2e.lines import silence
from tests.e2e.test_offline_engine import (
    ASK_DAY,
    GOODBYE,
    GREETING_FIRST,
    HEARD,
    demo_bridge,
    first_sentence,
    hear,
)
from tests.speech import recognize_ulaw8k, synthesize_ulaw8k, word_ratio
from tests.waiting import until

__all__ = [
    "barge_in_call", "conversation_call", "demo_bridge", "dtmf_call", "hangup_by_agent_call",
]  # fmt: skip

MakeCaller = Callable[[Bridge], SimulatedCaller]


async def conversation_call(
    tmp_path: Path,
    make_caller: MakeCaller,
    call_sid: Callable[[SimulatedCaller], str],
    *,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Greeting, one caller turn, caller hangs up; returns the journal entry after checking it."""
    async with demo_bridge(tmp_path, **(settings or {})) as bridge:
        caller = make_caller(bridge)
        async with caller.connect():
            greeting_audio = await greeting(caller)
            heard_greeting = recognize_ulaw8k(
                first_sentence(greeting_audio), grammar_words=[*HEARD, GREETING_FIRST]
            )
            mark = len(caller.received_audio)
            await caller.play(
                synthesize_ulaw8k("I would like to book an appointment") + silence(900)
            )
            await until(lambda: len(caller.received_audio) > mark + 8000, 20, "the answer")
            await caller.wait_until_quiet(quiet_s=0.8, timeout=20)
            heard_answer = hear(bytes(caller.received_audio[mark:]))
        call = await bridge.call_record(call_sid(caller))

    assert caller.violations == []
    assert len(greeting_audio) >= 8000 * 5, len(greeting_audio)  # both sentences played (≈5.8 s)
    assert word_ratio(heard_greeting, GREETING_FIRST) >= 0.8, (
        heard_greeting,
        f"{len(greeting_audio)} B heard, {caller.arrived_bytes} B arrived",
        caller.timeline[:3],
    )
    assert word_ratio(heard_answer, ASK_DAY) >= 0.8, heard_answer
    assert call["carrier"] == caller.wire.carrier
    assert call["status"] == "completed"
    users = [t["text"] for t in call["transcript"] if t["role"] == "user"]
    # the caller's sentence reached the agent (its recogniser may add a stray word after it)
    assert len(users) == 1 and users[0].startswith("i would like to book an appointment"), users
    return call


async def barge_in_call(
    tmp_path: Path,
    make_caller: MakeCaller,
    call_sid: Callable[[SimulatedCaller], str],
    *,
    tolerance_ms: float = 20,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The caller talks over the agent: the carrier is cleared at once and the journal's heard
    figure matches what the caller's playback clock really played (within ``tolerance_ms``)."""
    async with demo_bridge(tmp_path, **(settings or {})) as bridge:
        caller = make_caller(bridge)
        async with caller.connect():
            await greeting(caller)
            start = len(caller.received_audio)
            await caller.play(synthesize_ulaw8k("what are your opening hours") + silence(900))
            # hear about 2 s of the answer, then talk over it
            await caller.wait_for_agent_audio(min_bytes=start + 16000, timeout=20, heard=True)
            await caller.play(synthesize_ulaw8k("goodbye") + silence(900))
            if caller.wire.marks:
                await until(lambda: caller.clears, 10, "a clear")
            await until(caller.closed_by_bridge.is_set, 20, "the agent to hang up")
        call = await bridge.call_record(call_sid(caller))

    assert caller.violations == []
    (barge,) = [e["data"] for e in call["events"] if e["kind"] == "barge_in"]
    if caller.wire.marks:  # the carrier's clear drops what had not played
        heard_ms = (caller.clears[0].played_bytes - start) / 8  # the greeting had played in full
    else:  # the bridge paces and simply stops: what arrived was played, up to the pause
        heard_ms = _answer_bytes(caller, start) / 8
    assert abs(barge["heard_ms"] - heard_ms) <= tolerance_ms, (barge, heard_ms)
    hours = next(t for t in call["transcript"] if t["text"].startswith("We are open"))
    assert hours["interrupted"] is True
    said = hours["text"].split()
    assert 2 <= len(said) <= heard_ms / 1000 * 3.5 + 1, (said, heard_ms)
    assert call["end_reason"] == "agent ended the call"
    return call


async def dtmf_call(
    tmp_path: Path,
    make_caller: MakeCaller,
    call_sid: Callable[[SimulatedCaller], str],
    *,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Key presses reach the session as DTMF, in order, and are journaled."""
    async with demo_bridge(tmp_path, **(settings or {})) as bridge:
        caller = make_caller(bridge)
        async with caller.connect():
            await greeting(caller)
            for digit in "42#":
                await caller.send_dtmf(digit)
            await until(
                lambda: sum(1 for e in caller.timeline if e.kind == "dtmf") == 3, 5, "3 keys"
            )
            await caller.play(silence(400), wait=True)
        call = await bridge.call_record(call_sid(caller))

    assert caller.violations == []
    digits = [e["data"]["digit"] for e in call["events"] if e["kind"] == "dtmf"]
    assert digits == ["4", "2", "#"]
    return call


async def hangup_by_agent_call(
    tmp_path: Path,
    make_caller: MakeCaller,
    call_sid: Callable[[SimulatedCaller], str],
    *,
    settings: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], SimulatedCaller]:
    """The caller says goodbye, the agent says goodbye and ends the call; the carrier learns it
    (socket closed, and the wire's in-band hang-up where the protocol has one)."""
    async with demo_bridge(tmp_path, **(settings or {})) as bridge:
        caller = make_caller(bridge)
        async with caller.connect():
            await greeting(caller)
            mark = len(caller.received_audio)
            await caller.play(synthesize_ulaw8k("goodbye") + silence(900))
            await until(caller.closed_by_bridge.is_set, 20, "the agent to hang up")
            goodbye = hear(bytes(caller.received_audio[mark:]))
        call = await bridge.call_record(call_sid(caller))

    assert caller.violations == []
    assert word_ratio(goodbye, GOODBYE) >= 0.8, goodbye
    assert call["status"] == "completed"
    assert call["end_reason"] == "agent ended the call"
    return call, caller


def _answer_bytes(caller: SimulatedCaller, start: int, pause_s: float = 0.3) -> int:
    """Agent audio that arrived after the first ``start`` bytes, up to the first pause."""
    arrivals = [(e.at, int(e.detail)) for e in caller.timeline if e.kind == "media"]
    total, answer, last = 0, 0, None
    for at, size in arrivals:
        if total >= start:
            if last is not None and at - last > pause_s:
                break
            answer += size
            last = at
        total += size
    return answer
