"""The runtime with in-memory peers: a carrier socket and an engine made of queues."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.agents.loader import AgentRegistry
from bridge.agents.model import Agent
from bridge.agents.template import RenderedAgent
from bridge.carriers.twilio.codec import TwilioCodec
from bridge.config import Settings
from bridge.engines.base import EngineClient
from bridge.engines.openai_realtime.protocol import OpenAIRealtimeProtocol, RealtimeConfig
from bridge.errors import EngineUnavailable
from bridge.journal.store import JournalStore
from bridge.journal.writer import JournalWriter
from bridge.runtime.admission import admit
from bridge.runtime.call import CallRuntime
from bridge.runtime.services import Services
from bridge.session import actions as act
from bridge.session import events as ev
from bridge.simulate.wire import StreamEncoder
from bridge.tools.webhook import ToolDispatcher
from tests.waiting import until

ENC = StreamEncoder(stream_sid="MZ1", account_sid="AC1", call_sid="CA1")


class MemorySocket:
    def __init__(self) -> None:
        self.inbound: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    async def receive(self) -> str | bytes | None:
        if self.closed:
            return None
        return await self.inbound.get()

    async def send(self, frame: str | bytes) -> None:
        assert isinstance(frame, str), "Twilio frames are text"
        self.sent.append(json.loads(frame))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)
        self.inbound.put_nowait(None)

    def feed(self, *frames: str | bytes | None) -> None:
        for frame in frames:
            self.inbound.put_nowait(frame)


class MemoryEngine(EngineClient):
    """An engine made of queues; ``fail_connect`` simulates an unreachable endpoint."""

    def __init__(self, *, fail_connect: bool = False) -> None:
        self.capabilities = OpenAIRealtimeProtocol(RealtimeConfig()).capabilities
        self.fail_connect = fail_connect
        self.audio = bytearray()
        self.actions: list[act.EngineAction] = []
        self.queue: asyncio.Queue[ev.EngineEvent] = asyncio.Queue()
        self.closed = False

    async def connect(self) -> None:
        if self.fail_connect:
            raise EngineUnavailable("connection refused")
        self.queue.put_nowait(ev.EngineReady())

    async def send(self, action: act.EngineAction) -> None:
        self.actions.append(action)

    async def send_audio(self, payload: bytes) -> None:
        self.audio += payload

    async def events(self) -> AsyncIterator[ev.EngineEvent]:
        while True:
            event = await self.queue.get()
            yield event
            if isinstance(event, ev.EngineClosed):
                return

    async def close(self) -> None:
        self.closed = True


AGENTS = {
    "plain": Agent(name="plain", prompt_template="Hi."),
    "personal": Agent(name="personal", prompt_template="Call {{customer_name}}."),
    "greeter": Agent(name="greeter", prompt_template="Hi.", initial_message="Hello!"),
}


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[tuple[Services, list[MemoryEngine]]]:
    store = await JournalStore.open(f"sqlite+aiosqlite:///{tmp_path / 'j.db'}")
    writer = JournalWriter(store)
    await writer.start()
    engines: list[MemoryEngine] = []

    def factory(
        agent: Agent, rendered: RenderedAgent, settings: Settings, fmt: str, call_id: str
    ) -> tuple[EngineClient, str]:
        engine = MemoryEngine(fail_connect=agent.name == "unreachable")
        engines.append(engine)
        return engine, fmt

    agents = dict(AGENTS, unreachable=Agent(name="unreachable", prompt_template="x"))
    async with httpx.AsyncClient() as client:
        yield (
            Services(
                settings=Settings(start_timeout_s=0.3, max_calls=1),
                agents=AgentRegistry(agents, "plain"),
                journal=writer,
                tools=ToolDispatcher(client),
                engine_factories={"openai_realtime": factory},
            ),
            engines,
        )
    await writer.close()
    await store.close()


async def run_call(
    services: Services, socket: MemorySocket, call_id: str = "01TESTCALL"
) -> dict[str, Any]:
    await asyncio.wait_for(CallRuntime(services, socket, TwilioCodec(), call_id=call_id).run(), 5)
    await services.journal.flush()
    store: JournalStore = services.journal._store  # type: ignore[attr-defined]
    detail = await store.get_call(call_id)
    assert detail is not None
    return {
        "status": detail.call.status,
        "reason": detail.call.end_reason,
        "agent": detail.call.agent,
        "events": [(e.kind, dict(e.data)) for e in detail.events],
    }


def start(**params: str) -> str:
    return ENC.start(params)


async def test_audio_flows_both_ways_and_hangup_completes(services: Any) -> None:
    svc, engines = services
    sock = MemorySocket()
    sock.feed(ENC.connected(), start(agent="plain"), ENC.media(b"\x11" * 160))
    task = asyncio.create_task(run_call(svc, sock))
    await until(lambda: engines and len(engines[0].audio) >= 160)
    engine = engines[0]
    assert bytes(engine.audio) == b"\x11" * 160
    engine.queue.put_nowait(ev.ResponseStarted("r1"))
    engine.queue.put_nowait(ev.AgentAudio("r1", "i1", b"\x22" * 320))
    await until(lambda: len(sock.sent) >= 4)
    kinds = [m["event"] for m in sock.sent]
    assert kinds == ["media", "mark", "media", "mark"]
    assert base64.b64decode(sock.sent[0]["media"]["payload"]) == b"\x22" * 160
    sock.feed(ENC.stop())
    result = await task
    assert result["status"] == "completed"
    assert result["reason"] == "caller hung up"
    assert engine.closed


async def test_no_start_is_journaled_as_failed(services: Any) -> None:
    svc, _ = services
    sock = MemorySocket()
    sock.feed(ENC.connected())
    result = await run_call(svc, sock)
    assert result["status"] == "failed"
    assert "start" in result["reason"]
    assert sock.closed is not None


async def test_bad_frames_are_journaled_and_the_call_goes_on(services: Any) -> None:
    svc, _ = services
    sock = MemorySocket()
    sock.feed(ENC.media(b"\x00" * 160), "{not json", start(agent="plain"), '{"event":"wat"}')
    sock.feed('{"event":"media","streamSid":"MZ1","media":{"payload":"@@@"}}')
    sock.feed(ENC.media(b"\x33" * 160), ENC.stop())
    result = await run_call(svc, sock)
    assert result["status"] == "completed"
    errors = [data["message"] for kind, data in result["events"] if kind == "protocol_error"]
    assert [e.split(":")[0] for e in errors] == [
        "media before start",
        "frame is not JSON",
        "unknown event 'wat'",
        "media payload is not valid base64",
    ]


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"agent": "nobody"}, "unknown agent 'nobody'"),
        ({"agent": "personal"}, "needs variables not provided: customer_name"),
        ({"agent": "unreachable"}, "engine unavailable: connection refused"),
    ],
)
async def test_set_up_failures_end_the_call_cleanly(
    services: Any, params: dict[str, str], reason: str
) -> None:
    svc, _ = services
    sock = MemorySocket()
    sock.feed(start(**params))
    result = await run_call(svc, sock)
    assert result["status"] == "failed"
    assert reason in result["reason"]
    assert sock.closed is not None


async def test_engine_closing_mid_call_fails_the_call_and_closes_the_carrier(services: Any) -> None:
    svc, engines = services
    sock = MemorySocket()
    sock.feed(start(agent="plain"))
    task = asyncio.create_task(run_call(svc, sock))
    await until(lambda: engines)
    engines[0].queue.put_nowait(ev.EngineClosed("code 1011: upstream died"))
    result = await task
    assert result["status"] == "failed"
    assert result["reason"] == "engine closed: code 1011: upstream died"
    assert sock.closed == (1000, "engine closed: code 1011: upstream died")


async def test_initial_message_is_requested_when_the_engine_is_ready(services: Any) -> None:
    svc, engines = services
    sock = MemorySocket()
    sock.feed(start(agent="greeter"))
    task = asyncio.create_task(run_call(svc, sock))
    await until(lambda: engines and engines[0].actions)
    assert engines[0].actions == [act.CreateResponse(say="Hello!")]
    sock.feed(ENC.stop())
    await task


async def test_a_bug_ends_only_that_call(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    svc, engines = services
    sock = MemorySocket()
    sock.feed(start(agent="plain"))
    task = asyncio.create_task(run_call(svc, sock))
    await until(lambda: engines)

    def boom(self: object, event: object, now: float) -> list[act.Action]:
        raise RuntimeError("bug")

    monkeypatch.setattr("bridge.session.core.CallSession.handle", boom)
    engines[0].queue.put_nowait(ev.SpeechStarted("u1"))
    result = await task
    assert result["status"] == "failed"
    assert result["reason"] == "internal error: RuntimeError: bug"


async def test_admission_cap_rejects_and_journals(services: Any) -> None:
    svc, _ = services
    with admit(svc, "01FIRST") as first:
        assert first
        with admit(svc, "01SECOND") as second:
            assert not second
    await svc.journal.flush()
    store: JournalStore = svc.journal._store  # type: ignore[attr-defined]
    detail = await store.get_call("01SECOND")
    assert detail is not None
    assert (detail.call.status, detail.call.end_reason) == ("rejected", "rejected: capacity")
