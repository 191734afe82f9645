"""A tiny in-test "bridge": a websockets server that records what the simulated caller sends.

Each test gives it a script (``behaviour``), an async function run once ``start`` has arrived,
with the :class:`FakeBridge` to send media/marks/clears through. Every frame the caller sends is
checked against Twilio's shapes here, independently of the simulator's own encoder.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bridge.audio.g711 import pcm16_to_ulaw

Behaviour = Callable[["FakeBridge"], Awaitable[None]]


def tone(seconds: float, freq: float = 440.0, level: float = 8000.0) -> bytes:
    """A μ-law sine tone at 8 kHz."""
    t = np.arange(int(seconds * 8000)) / 8000
    pcm = (level * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()
    return pcm16_to_ulaw(pcm)


def is_silence(frame: bytes) -> bool:
    return frame == b"\xff" * len(frame)


class FakeBridge:
    def __init__(self, behaviour: Behaviour | None) -> None:
        self.behaviour = behaviour
        self.frames: list[tuple[float, dict[str, Any]]] = []  # (arrival, parsed frame)
        self.raw: list[str | bytes] = []
        self.ws: ServerConnection | None = None
        self.headers: Any = None  # websockets Headers: case-insensitive
        self.started = asyncio.Event()
        self.arrived = asyncio.Event()  # set on every frame from the caller
        self.closed = asyncio.Event()
        self.stream_sid = ""
        self.errors: list[BaseException] = []
        self.url = ""

    # -- what the caller sent ------------------------------------------------------------

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [f for _, f in self.frames if f.get("event") == kind]

    def media(self) -> list[tuple[float, bytes, dict[str, Any]]]:
        return [
            (t, base64.b64decode(f["media"]["payload"]), f)
            for t, f in self.frames
            if f.get("event") == "media"
        ]

    async def wait_for(self, kind: str, count: int = 1, within: float = 5.0) -> None:
        """Wait until the caller has sent ``count`` frames of ``kind``."""
        async with asyncio.timeout(within):
            while len(self.events(kind)) < count:
                self.arrived.clear()
                await self.arrived.wait()

    # -- what the bridge sends -----------------------------------------------------------

    async def send(self, msg: dict[str, Any] | str) -> None:
        assert self.ws is not None
        await self.ws.send(msg if isinstance(msg, str) else json.dumps(msg))

    async def send_audio(self, ulaw: bytes, chunk: int = 160) -> None:
        for i in range(0, len(ulaw), chunk):
            payload = base64.b64encode(ulaw[i : i + chunk]).decode()
            await self.send(
                {"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}}
            )

    async def send_mark(self, name: str) -> None:
        await self.send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def send_clear(self) -> None:
        await self.send({"event": "clear", "streamSid": self.stream_sid})

    # -- server ------------------------------------------------------------------------------

    async def handler(self, ws: ServerConnection) -> None:
        self.ws = ws
        assert ws.request is not None
        self.headers = ws.request.headers
        task: asyncio.Task[None] | None = None
        try:
            async for raw in ws:
                self.raw.append(raw)
                assert isinstance(raw, str), "Twilio sends text frames only"
                frame = json.loads(raw)
                self.frames.append((time.monotonic(), frame))
                self.arrived.set()
                if frame["event"] == "start":
                    self.stream_sid = frame["streamSid"]
                    self.started.set()
                    if self.behaviour is not None:
                        task = asyncio.create_task(self.behaviour(self))
        except ConnectionClosed:
            pass
        except BaseException as exc:  # surfaced by the fixture
            self.errors.append(exc)
            raise
        finally:
            self.closed.set()
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, ConnectionClosed):
                    pass
                except Exception as exc:
                    self.errors.append(exc)


@asynccontextmanager
async def running_bridge(behaviour: Behaviour | None = None) -> AsyncIterator[FakeBridge]:
    bridge = FakeBridge(behaviour)
    async with serve(bridge.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        bridge.url = f"ws://127.0.0.1:{port}/twilio/media"
        yield bridge
    assert not bridge.errors, bridge.errors


@pytest.fixture
def serve_bridge() -> Callable[[Behaviour | None], Any]:
    """``async with serve_bridge(behaviour) as bridge:`` runs a fake bridge on a free port."""
    return running_bridge


@pytest.fixture
def make_tone() -> Callable[..., bytes]:
    return tone
