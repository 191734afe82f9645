"""The shipped offline demo agent (``agents/demo.toml``), whole calls through the real server.

No fake anywhere on the agent side: pocketsphinx hears the caller, the scripted dialog answers,
espeak-ng speaks, the booking tool is callbridge's own demo route. The caller is the Twilio
simulator speaking espeak-ng sentences; what it hears is recognised again (with a grammar of
what it could hear plus distractors, so wrong audio fails).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.api.app import create_app
from bridge.audio.espeak import EXECUTOR, synthesize_ulaw
from bridge.config import Settings
from bridge.simulate.caller import frame_rms
from tests.auth import SECRET_KEY, authorize
from tests.e2e.conftest import Bridge, say
from tests.e2e.lines import silence
from tests.servers import serve
from tests.speech import recognize_ulaw8k, synthesize_ulaw8k, word_ratio
from tests.waiting import until

pytestmark = pytest.mark.speech

ROOT = Path(__file__).resolve().parents[2]
GREETING = (
    "thank you for calling riverside dental you can book an appointment or ask about our "
    "opening hours"
)
ASK_DAY = "which day would you like"
ASK_TIME = "what time would suit you"
HOURS = (
    "we are open from nine in the morning until five in the afternoon monday to friday "
    "is there anything else"
)
GOODBYE = "thank you for calling riverside dental goodbye"
HEARD = [
    GREETING,
    ASK_DAY,
    ASK_TIME,
    HOURS,
    GOODBYE,
    "sorry i did not catch that",
    "you are booked for tomorrow at ten o'clock",
    "you are booked for friday at two o'clock",
    "your confirmation code is",
    "is there anything else",
    "the weather in paris is sunny and warm",
    "please hold the line",
]


GREETING_FIRST = "thank you for calling riverside dental"
"""The greeting's first sentence: what the conversation check recognises of the greeting.

espeak-ng carries state from one synthesis to the next (its output for the same text differs
with what it said before, even across ``espeak_Initialize``; measured: three different renderings
of one sentence in a row, the same sequence in every process). Some renderings of the second
sentence defeat the grammar judge entirely (no hypothesis), and which test gets one depends on
the suite's order. The first sentence, cut at its pause, was recognised in every rendering seen;
the whole greeting must still have played (its length), and the answer is judged whole."""


def first_sentence(ulaw: bytes, pause_frames: int = 10) -> bytes:
    """``ulaw`` up to the first pause of ``pause_frames`` × 20 ms after speech began."""
    quiet, speaking = 0, False
    for end in range(160, len(ulaw) + 1, 160):
        voiced = frame_rms(ulaw[end - 160 : end]) > 300
        speaking = speaking or voiced
        quiet = 0 if voiced else quiet + 1
        if speaking and quiet >= pause_frames:
            return ulaw[:end]
    return ulaw


def hear(ulaw: bytes) -> str:
    return recognize_ulaw8k(ulaw, grammar_words=HEARD)


@contextlib.asynccontextmanager
async def demo_bridge(tmp_path: Path, **overrides: Any) -> AsyncIterator[Bridge]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}",
        agents_dir=ROOT / "agents",
        prompts_dir=ROOT / "prompts",
        secret_keys=(SECRET_KEY,),
        **overrides,
    )
    app = create_app(settings, env={})
    async with (
        serve(app) as hostport,
        httpx.AsyncClient(base_url=f"http://{hostport}", timeout=10) as http,
    ):
        await authorize(app, http)
        yield Bridge(f"ws://{hostport}/twilio/media", http, app)


async def say_and_get(caller: Any, sentence: str, *, min_bytes: int = 8000) -> bytes:
    return await say(
        caller, synthesize_ulaw8k(sentence) + silence(900), min_bytes=min_bytes, quiet_s=0.8
    )


async def say_and_hear(caller: Any, sentence: str, *, min_bytes: int = 8000) -> str:
    return hear(await say_and_get(caller, sentence, min_bytes=min_bytes))


async def test_demo_agent_books_an_appointment_and_hangs_up(tmp_path: Path) -> None:
    async with demo_bridge(tmp_path) as bridge:
        caller = bridge.caller()  # no agent named: the default, which is the demo
        async with caller.connect():
            await caller.wait_for_agent_audio(min_bytes=8000, timeout=15)
            await caller.wait_until_quiet(quiet_s=0.8, timeout=20)
            greeting_audio = caller.played_ulaw()
            # judged by its first sentence, as the carrier suite does (carrier_suite.py says why)
            greeting = recognize_ulaw8k(
                first_sentence(greeting_audio), grammar_words=[*HEARD, GREETING_FIRST]
            )
            ask_day = await say_and_hear(caller, "I would like to book an appointment")
            ask_time = await say_and_hear(caller, "tomorrow")
            booked_audio = await say_and_get(caller, "ten o'clock", min_bytes=16000)
            mark = len(caller.received_audio)
            await caller.play(synthesize_ulaw8k("goodbye") + silence(900))
            await until(caller.closed_by_bridge.is_set, 20, "the agent to hang up")
            goodbye = hear(bytes(caller.received_audio[mark:]))
        call = await bridge.call_record(caller.call_sid)

    assert len(greeting_audio) >= 8000 * 5, len(greeting_audio)  # both sentences played
    assert word_ratio(greeting, GREETING_FIRST) >= 0.8, greeting
    assert word_ratio(ask_day, ASK_DAY) >= 0.8, ask_day
    assert word_ratio(ask_time, ASK_TIME) >= 0.8, ask_time
    assert word_ratio(goodbye, GOODBYE) >= 0.8, goodbye

    assert call["agent"] == "demo"
    assert call["status"] == "completed"
    assert call["end_reason"] == "agent ended the call"
    users = [t["text"] for t in call["transcript"] if t["role"] == "user"]
    assert users == [
        "i would like to book an appointment",
        "tomorrow",
        "ten o'clock",
        "goodbye",
    ]
    agents = [t["text"] for t in call["transcript"] if t["role"] == "agent"]
    assert agents[0].startswith("Thank you for calling Riverside Dental")
    assert agents[3].startswith("You are booked for tomorrow at ten o'clock.")
    (tool,) = call["tool_calls"]
    assert tool["name"] == "book_appointment"
    assert tool["arguments"] == {"day": "tomorrow", "time": "ten o'clock"}
    assert tool["ok"] is True
    assert json.loads(tool["output"])["confirmation"]
    # the first sentence of the answer, as long as the engine's voice takes to say it
    first = "You are booked for tomorrow at ten o'clock."
    spoken = EXECUTOR.submit(synthesize_ulaw, first).result()[0]
    booked = hear(booked_audio[: len(spoken)])
    assert word_ratio(booked, first) >= 0.8, booked


async def test_demo_agent_barge_in_is_exact_and_keeps_the_words_heard(tmp_path: Path) -> None:
    async with demo_bridge(tmp_path) as bridge:
        caller = bridge.caller()
        async with caller.connect():
            await caller.wait_for_agent_audio(min_bytes=8000, timeout=15)
            await caller.wait_until_quiet(quiet_s=0.8, timeout=20)
            start = len(caller.received_audio)
            await caller.play(synthesize_ulaw8k("what are your opening hours") + silence(900))
            # hear about 2 s of the answer, then talk over it
            await caller.wait_for_agent_audio(min_bytes=start + 16000, timeout=20, heard=True)
            await caller.play(synthesize_ulaw8k("goodbye") + silence(900))
            await until(lambda: caller.clears, 10, "a clear")
            await until(caller.closed_by_bridge.is_set, 20, "the agent to hang up")
        call = await bridge.call_record(caller.call_sid)

    (clear,) = caller.clears
    (barge,) = [e["data"] for e in call["events"] if e["kind"] == "barge_in"]
    heard_ms = (clear.played_bytes - start) / 8  # the greeting had played in full
    assert abs(barge["heard_ms"] - heard_ms) <= 20, (barge, heard_ms)
    (cleared,) = [e for e in call["events"] if e["kind"] == "carrier_cleared"]
    assert cleared["data"]["latency_ms"] < 5
    hours = next(t for t in call["transcript"] if t["text"].startswith("We are open"))
    assert hours["interrupted"] is True
    # espeak-ng's word timings: the words that had been heard, about 2.5 words per second
    said = hours["text"].split()
    assert 2 <= len(said) <= heard_ms / 1000 * 3.5 + 1, (said, heard_ms)
    assert call["end_reason"] == "agent ended the call"
