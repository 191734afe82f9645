"""Recording through the runtime, with in-memory peers and a fake clock: caller left, agent
right, where each was in the call; a barge-in cuts the agent; a disk that fails never ends a
call."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bridge.agents.loader import AgentRegistry
from bridge.agents.model import Agent
from bridge.agents.template import RenderedAgent
from bridge.audio import g711
from bridge.carriers.twilio.codec import TwilioCodec
from bridge.config import Settings
from bridge.engines.base import EngineClient
from bridge.journal.store import JournalStore
from bridge.journal.writer import JournalWriter
from bridge.runtime.call import CallRuntime
from bridge.runtime.services import Services
from bridge.session import events as ev
from bridge.session.state import CallState
from bridge.tools.webhook import ToolDispatcher
from tests.runtime.test_call_runtime import ENC, MemoryEngine, MemorySocket
from tests.waiting import until

AGENTS = {
    "recorded": Agent(name="recorded", prompt_template="Hi.", record=True),
    "plain": Agent(name="plain", prompt_template="Hi."),
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[tuple[Services, list[MemoryEngine]]]:
    store = await JournalStore.open(f"sqlite+aiosqlite:///{tmp_path / 'j.db'}")
    writer = JournalWriter(store)
    await writer.start()
    engines: list[MemoryEngine] = []

    def factory(
        agent: Agent, rendered: RenderedAgent, settings: Settings, fmt: str, call_id: str
    ) -> tuple[EngineClient, str]:
        engines.append(MemoryEngine())
        return engines[-1], fmt

    async with httpx.AsyncClient() as client:
        yield (
            Services(
                settings=Settings(recordings_dir=tmp_path / "recordings"),
                agents=AgentRegistry(AGENTS, "plain"),
                journal=writer,
                tools=ToolDispatcher(client),
                engine_factories={"openai_realtime": factory},
            ),
            engines,
        )
    await writer.close()
    await store.close()


class Call:
    """One call driven step by step: every frame is handled at the clock's time."""

    def __init__(self, services: Services, engines: list[MemoryEngine], agent: str) -> None:
        self.services, self.engines = services, engines
        self.clock = Clock()
        self.socket = MemorySocket()
        self.runtime = CallRuntime(
            services, self.socket, TwilioCodec(), call_id="01RECORDED", clock=self.clock
        )
        self.socket.feed(ENC.connected(), ENC.start({"agent": agent}))
        self.task = asyncio.create_task(self.runtime.run())
        self.sent = b""

    async def ready(self) -> MemoryEngine:
        await until(lambda: self.runtime.session.state is CallState.ACTIVE, what="engine ready")
        return self.engines[0]

    async def caller(self, seconds: float, byte: int) -> None:
        """Caller frames at real time (on the fake clock), each handled before the next."""
        engine = self.engines[0]
        for _ in range(round(seconds / 0.02)):
            self.clock.now = round(self.clock.now + 0.02, 6)
            frame = bytes([byte]) * 160
            self.sent += frame
            self.socket.feed(ENC.media(frame))
            await until(lambda: len(engine.audio) == len(self.sent), what="the frame handled")

    async def end(self) -> dict[str, Any]:
        self.socket.feed(ENC.stop())
        await asyncio.wait_for(self.task, 5)
        await self.services.journal.flush()
        store: JournalStore = self.services.journal._store
        detail = await store.get_call("01RECORDED")
        assert detail is not None
        return {
            "status": detail.call.status,
            "recording": detail.call.recording,
            "events": [(e.kind, dict(e.data)) for e in detail.events],
        }


def channels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return samples[0::2], samples[1::2]


async def test_caller_left_agent_right_and_a_barge_in_cuts_the_agent(
    services: Any, tmp_path: Path
) -> None:
    call = Call(services[0], services[1], "recorded")
    engine = await call.ready()
    await call.caller(0.5, 0x10)
    engine.queue.put_nowait(ev.ResponseStarted("r1"))
    engine.queue.put_nowait(ev.AgentAudio("r1", "i1", b"\x20" * 8000))  # a second, at 0.5 s
    await until(lambda: sum(m["event"] == "media" for m in call.socket.sent) == 50)
    await call.caller(0.3, 0x30)
    engine.queue.put_nowait(ev.SpeechStarted("u1"))  # the caller talks over it at 0.8 s
    await until(lambda: any(m["event"] == "clear" for m in call.socket.sent))
    await call.caller(0.2, 0x40)
    result = await call.end()

    assert result["status"] == "completed"
    assert result["recording"] == "01RECORDED.wav"
    assert not [kind for kind, _ in result["events"] if kind == "recording_error"]
    left, right = channels(tmp_path / "recordings" / "01RECORDED.wav")
    assert left.tobytes() == g711.ulaw_to_pcm16(call.sent)  # the caller, sample for sample
    agent = np.frombuffer(g711.ulaw_to_pcm16(b"\x20"), dtype="<i2")[0]
    assert set(right[4000:6400]) == {agent}  # from 0.5 s until the clear at 0.8 s
    assert not right[:4000].any() and not right[6400:].any()


async def test_an_agent_that_does_not_record_leaves_no_file(services: Any, tmp_path: Path) -> None:
    call = Call(services[0], services[1], "plain")
    await call.ready()
    await call.caller(0.6, 0x10)
    result = await call.end()
    assert result["recording"] is None
    assert not (tmp_path / "recordings").exists()


async def test_a_recording_that_cannot_be_written_never_stops_the_call(
    services: Any, tmp_path: Path
) -> None:
    svc, engines = services
    (tmp_path / "taken").write_text("a file where the directory should be")
    svc.settings = svc.settings.with_(recordings_dir=tmp_path / "taken" / "recordings")
    call = Call(svc, engines, agent="recorded")
    await call.ready()
    await call.caller(0.6, 0x10)
    result = await call.end()
    assert result["status"] == "completed"
    assert result["recording"] is None
    errors = [data for kind, data in result["events"] if kind == "recording_error"]
    assert errors == [{"message": "recording not started: Not a directory"}]


async def test_a_disk_that_fails_mid_call_is_journaled_once(
    services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = Call(services[0], services[1], "recorded")
    await call.ready()
    await call.caller(0.6, 0x10)  # the first half second is on disk
    recording = call.runtime._recording
    assert recording is not None

    file: Any = recording._file
    write = file.write

    def full(block: bytes) -> int:  # no room for audio; the header is rewritten in place
        if len(block) != 44:
            raise OSError(28, "No space left on device")
        return int(write(block))

    monkeypatch.setattr(file, "write", full)
    await call.caller(1.0, 0x20)
    result = await call.end()
    assert result["status"] == "completed"
    assert result["recording"] == "01RECORDED.wav"  # what was written stays playable
    errors = [data for kind, data in result["events"] if kind == "recording_error"]
    assert errors == [{"message": "recording stopped: No space left on device"}]
    left, _ = channels(tmp_path / "recordings" / "01RECORDED.wav")
    assert len(left) == 4000
