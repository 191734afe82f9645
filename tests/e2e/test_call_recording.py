"""Call recording end to end: an offline agent with ``record = true`` answers a simulated Twilio
caller through the real server; the call's ``recording_url`` is fetched with no API key, as an
``<audio>`` tag would.

The recording must be a stereo WAV whose left channel is the caller's audio sample for sample
and whose right channel is what the caller heard, each at the moment it happened on the caller's
own clock: the greeting (recognised again from the right channel), the answer cut where the
caller talked over it, the goodbye.
"""

from __future__ import annotations

import contextlib
import io
import textwrap
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from bridge.api.app import create_app
from bridge.audio import g711
from bridge.config import Settings
from bridge.secrets import SecretBox
from bridge.simulate.caller import SimulatedCaller
from tests.auth import SECRET_KEY, api_key, authorize, bearer
from tests.e2e.conftest import Bridge
from tests.e2e.lines import silence
from tests.e2e.test_offline_engine import GREETING_FIRST, HEARD, first_sentence
from tests.servers import serve
from tests.speech import recognize_ulaw8k, synthesize_ulaw8k, word_ratio
from tests.waiting import until

pytestmark = pytest.mark.speech

ROOT = Path(__file__).resolve().parents[2]
RATE = 8000
RECEPTIONIST = """
    engine = "pipeline"
    instructions = "A scripted receptionist."
    initial_message = "Thank you for calling Riverside Dental. You can book an appointment or ask about our opening hours."
    {record}

    [stt]
    provider = "local"

    [llm]
    provider = "scripted"

    [tts]
    provider = "local"
    voice = "en-us"

    [dialog]
    fallback = "Sorry, I did not catch that."

    [[dialog.intents]]
    name = "hours"
    examples = ["what are your opening hours", "when are you open"]
    reply = "We are open from nine in the morning until five in the afternoon, Monday to Friday. Is there anything else?"

    [[dialog.intents]]
    name = "goodbye"
    examples = ["goodbye", "no thank you"]
    reply = "Thank you for calling Riverside Dental. Goodbye."
    end_call = true
"""


@contextlib.asynccontextmanager
async def recording_bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    agents = tmp_path / "agents"
    agents.mkdir()
    for name, record in (("recorded", "record = true"), ("unrecorded", "")):
        text = textwrap.dedent(RECEPTIONIST).format(record=record)
        (agents / f"{name}.toml").write_text(text)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}",
        agents_dir=agents,
        prompts_dir=ROOT / "prompts",
        default_agent="recorded",
        recordings_dir=tmp_path / "recordings",
        secret_keys=(SECRET_KEY,),
    )
    app = create_app(settings, env={})
    async with (
        serve(app) as hostport,
        httpx.AsyncClient(base_url=f"http://{hostport}", timeout=10) as http,
    ):
        await authorize(app, http)
        yield Bridge(f"ws://{hostport}/twilio/media", http, app)


def pcm(ulaw: bytes) -> np.ndarray:
    return np.frombuffer(g711.ulaw_to_pcm16(ulaw), dtype="<i2")


def find(channel: np.ndarray, audio: np.ndarray) -> int:
    """Where ``audio`` (voiced, so it cannot match silence) sits in ``channel``, in samples."""
    at = channel.tobytes().find(audio.tobytes())
    assert at >= 0 and at % 2 == 0, "not in the recording"
    return at // 2


def voiced_from(audio: np.ndarray, start: int = 0) -> int:
    """The first sample at or after ``start`` of a 20 ms stretch that is clearly speech."""
    loud = np.flatnonzero(np.abs(audio[start:]) > 2000)
    assert loud.size, "no speech"
    return start + int(loud[0])


def heard_at(caller: SimulatedCaller, after: float) -> float:
    """When the first agent audio arriving after ``after`` began to play at the caller (nothing
    else was playing: it played as it arrived), in seconds since the caller's first frame."""
    assert caller.started_at is not None
    arrived = next(e.at for e in caller.timeline if e.kind == "media" and e.at > after)
    return arrived - caller.started_at


async def test_a_recorded_call_plays_back_aligned_without_a_key(tmp_path: Path) -> None:
    async with recording_bridge(tmp_path) as bridge:
        caller = bridge.caller(agent="recorded")
        async with caller.connect():
            await caller.wait_for_agent_audio(min_bytes=8000, timeout=15)
            greeting_at = heard_at(caller, 0.0)
            await caller.wait_until_quiet(quiet_s=0.8, timeout=20)
            greeting = caller.played_ulaw()
            question = synthesize_ulaw8k("what are your opening hours")
            asked_at_frame = caller.frames_sent  # the question leaves in this frame or the next
            asked = time.monotonic()
            await caller.play(question + silence(900))
            # hear about 1.5 s of the answer, then talk over it
            start = len(caller.received_audio)
            await caller.wait_for_agent_audio(min_bytes=start + 12000, timeout=20, heard=True)
            answer_at = heard_at(caller, asked)
            await caller.play(synthesize_ulaw8k("goodbye") + silence(900))
            await until(lambda: caller.clears, 10, "a clear")
            await until(caller.closed_by_bridge.is_set, 20, "the agent to hang up")
        call = await bridge.call_record(caller.call_sid)
        url = call["recording_url"]
        assert isinstance(url, str) and url.startswith(f"/v1/calls/{call['id']}/audio?token=")
        host = bridge.url("", "http")
        async with httpx.AsyncClient(base_url=host, timeout=10) as browser:  # no API key
            response = await browser.get(url)
            part = await browser.get(url, headers={"Range": "bytes=0-43"})
        file = tmp_path / "recordings" / f"{call['id']}.wav"

    # -- the file -------------------------------------------------------------------------
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert response.content == file.read_bytes()
    assert (part.status_code, part.content) == (206, response.content[:44])
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, RATE)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    left, right = samples[0::2], samples[1::2]
    assert len(left) >= caller.frames_sent * 160 - 8 * 160  # the whole call, bar the hang-up

    # -- right: the greeting, intelligible, when the caller heard it ----------------------
    heard = pcm(greeting)
    voice = voiced_from(heard)
    at = find(right, heard[voice : voice + 800]) - voice  # where the greeting starts
    assert abs(at / RATE - greeting_at) < 0.1, (at / RATE, greeting_at)
    recorded = g711.pcm16_to_ulaw(right[at : at + len(heard)].tobytes())
    said = recognize_ulaw8k(first_sentence(recorded), grammar_words=[*HEARD, GREETING_FIRST])
    assert word_ratio(said, GREETING_FIRST) >= 0.8, said

    # -- left: the caller's question, sample for sample, when it was said ------------------
    spoken = pcm(question)
    asked_at = find(left, spoken)
    assert asked_at in (asked_at_frame * 160, (asked_at_frame + 1) * 160), (
        asked_at,
        asked_at_frame,
    )
    assert not left[at : at + len(heard)].any()  # the caller was quiet through the greeting

    # -- right: the answer from when it played until the caller cut in, then nothing ------
    (clear,) = caller.clears
    answer = pcm(caller.played_ulaw()[start : clear.played_bytes])
    voice = voiced_from(answer)
    begins = find(right, answer[voice : voice + 800]) - voice
    assert abs(begins / RATE - answer_at) < 0.1, (begins / RATE, answer_at)
    assert begins > asked_at + len(spoken)  # after the question, in the recording too
    slack = 320  # 40 ms: the caller's clock and the bridge's may differ by a frame or two
    assert np.array_equal(right[begins : begins + len(answer) - slack], answer[:-slack])
    after_cut = right[begins + len(answer) + slack : begins + len(answer) + slack + 1600]
    assert not after_cut.any()  # the rest of the answer was never heard: not recorded
    assert left[begins + len(answer) - slack :].any()  # the caller's "goodbye" over it


async def test_tokens_keys_and_an_agent_that_does_not_record(tmp_path: Path) -> None:
    async with recording_bridge(tmp_path) as bridge:
        ids = []
        for agent in ("recorded", "unrecorded"):
            caller = bridge.caller(agent=agent)
            async with caller.connect():
                await caller.wait_for_agent_audio(min_bytes=4000, timeout=15)
            ids.append((await bridge.call_record(caller.call_sid))["id"])
        recorded, unrecorded = ids
        detail = (await bridge.http.get(f"/v1/calls/{unrecorded}")).json()
        assert detail["recording_url"] is None
        assert sorted(p.name for p in (tmp_path / "recordings").iterdir()) == [f"{recorded}.wav"]

        box = SecretBox([SECRET_KEY])
        later = int(time.time()) + 600
        audio = f"/v1/calls/{recorded}/audio"
        good = box.sign("audio", f"{recorded}:default", later)
        cases = {
            "valid": (good, 200),
            "another call's": (box.sign("audio", f"{unrecorded}:default", later), 403),
            "expired": (box.sign("audio", f"{recorded}:default", int(time.time()) - 1), 401),
            "forged": (good.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAAAAA", 401),
        }
        async with httpx.AsyncClient(base_url=bridge.url("", "http"), timeout=10) as browser:
            for what, (token, status) in cases.items():
                response = await browser.get(audio, params={"token": token})
                assert response.status_code == status, (what, response.text)
            assert (await browser.get(audio)).status_code == 401  # neither token nor key
            acme = bearer(await api_key(bridge.app, org="acme", scope="read"))
            assert (await browser.get(audio, headers=acme)).status_code == 404
        own = await bridge.http.get(audio)  # the organization's own key: no token needed
        assert (own.status_code, own.headers["content-type"]) == (200, "audio/wav")
        none = await bridge.http.get(f"/v1/calls/{unrecorded}/audio")
        assert none.status_code == 404
