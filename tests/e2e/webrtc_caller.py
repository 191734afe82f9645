"""A browser-like WebRTC caller in Python (aiortc), for end-to-end tests of browser calls.

It does what the console page does: offers an audio track and a ``control`` data channel, posts
the offer to ``/v1/webrtc/offer``, plays queued speech as its microphone on a 20 ms clock and
records what the bridge sends back (decoded from Opus by aiortc, resampled to 16 kHz mono).
Everything it receives is timestamped so tests can say *when* agent audio arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioice.ice
import httpx
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler

from tests.speech import resample_pcm16

RATE = 16000
FRAME_SAMPLES = RATE // 50
FRAME_BYTES = FRAME_SAMPLES * 2
VOICED_RMS = 300.0


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves 127.0.0.1 out of its host candidates; a loopback-only test needs it."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@contextlib.contextmanager
def loopback_host_candidates() -> Iterator[None]:
    """:func:`loopback_ice` as a context manager (for module-scoped servers)."""
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # type: ignore[assignment]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original  # type: ignore[assignment]


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


class Microphone(MediaStreamTrack):
    """The caller's voice: queued 16 kHz PCM in 20 ms frames on an absolute clock, else silence."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        self._start: float | None = None
        self._sent = 0
        self.spoken_until: float | None = None  # when the last queued voice frame left
        self.drained = asyncio.Event()
        self.drained.set()

    def say(self, pcm16: bytes) -> None:
        self._pending += pcm16
        self.drained.clear()

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._sent * 0.02
        if due > now:
            await asyncio.sleep(due - now)
        chunk = bytes(self._pending[:FRAME_BYTES])
        del self._pending[:FRAME_BYTES]
        if chunk:
            chunk += bytes(FRAME_BYTES - len(chunk))
            if rms(chunk) >= VOICED_RMS:
                self.spoken_until = time.monotonic()
            if not self._pending:
                self.drained.set()
        else:
            chunk = bytes(FRAME_BYTES)
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(chunk)
        frame.sample_rate = RATE
        frame.time_base = fractions.Fraction(1, RATE)
        frame.pts = self._sent * FRAME_SAMPLES
        self._sent += 1
        return frame


class WebRTCCaller:
    """One browser-like call to a bridge at ``base_url`` (``http://host:port``)."""

    def __init__(
        self,
        base_url: str,
        *,
        agent: str | None = None,
        context: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url
        self.headers = headers or {}  # the API key
        self.agent = agent
        self.context = context or {}
        self.pc = RTCPeerConnection()
        self.mic = Microphone()
        self.received = bytearray()  # 16 kHz mono PCM16 of everything the bridge sent
        self.voiced_at: list[tuple[int, float]] = []  # (byte offset, arrival) of voiced frames
        self.messages: list[dict[str, Any]] = []  # from the bridge over the data channel
        self.call_id = ""
        self.answer: dict[str, Any] = {}
        self.ended = asyncio.Event()
        self.channel = self.pc.createDataChannel("control")
        self.channel.on("message", self._on_message)
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.addTrack(self.mic)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[WebRTCCaller]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"sdp": self.pc.localDescription.sdp, "type": "offer", "context": self.context}
        if self.agent is not None:
            offer["agent"] = self.agent
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=20, headers=self.headers
        ) as http:
            response = await http.post("/v1/webrtc/offer", json=offer)
        response.raise_for_status()
        self.answer = response.json()
        self.call_id = self.answer["call_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(self.answer["sdp"], "answer"))
        try:
            yield self
        finally:
            await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()

    def hang_up(self) -> None:
        self.channel.send(json.dumps({"type": "hangup"}))

    def send(self, message: dict[str, Any] | str) -> None:
        self.channel.send(message if isinstance(message, str) else json.dumps(message))

    async def wait_channel_open(self, timeout: float = 10) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while self.channel.readyState != "open":
            if time.monotonic() > deadline:
                raise AssertionError("the data channel never opened")
            await asyncio.sleep(0.02)

    async def say(self, pcm16: bytes, *, wait: bool = True) -> None:
        self.mic.say(pcm16)
        if wait:
            await asyncio.wait_for(self.mic.drained.wait(), len(pcm16) / 32000 + 10)

    def voiced_bytes(self, since: int = 0) -> int:
        return sum(FRAME_BYTES for offset, _ in self.voiced_at if offset >= since)

    async def wait_for_voice(
        self,
        *,
        since: int = 0,
        min_ms: int = 500,
        timeout: float = 20,  # noqa: ASYNC109
    ) -> None:
        deadline = time.monotonic() + timeout
        while self.voiced_bytes(since) < min_ms * 32:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no agent voice ({self.voiced_bytes(since)} B) in {timeout} s"
                )
            await asyncio.sleep(0.02)

    async def wait_until_quiet(self, quiet_s: float = 0.8, timeout: float = 30) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while True:
            last = self.voiced_at[-1][1] if self.voiced_at else 0.0
            if self.voiced_at and time.monotonic() - last >= quiet_s:
                return
            if time.monotonic() > deadline:
                raise AssertionError("the agent never went quiet")
            await asyncio.sleep(0.02)

    def heard(self, since: int = 0) -> bytes:
        """Agent audio since byte ``since``, as 8 kHz PCM16 (the speech judge's input rate)."""
        return resample_pcm16(bytes(self.received[since:]), RATE, 8000)

    # -- aiortc callbacks ----------------------------------------------------------------------

    def _on_message(self, message: str | bytes) -> None:
        self.messages.append(json.loads(message))

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.ended.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._record(track)))

    async def _record(self, track: MediaStreamTrack) -> None:
        resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
        pending = b""
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                for out in resampler.resample(frame):  # type: ignore[arg-type]
                    pending += out.to_ndarray().tobytes()
                while len(pending) >= FRAME_BYTES:
                    chunk, pending = pending[:FRAME_BYTES], pending[FRAME_BYTES:]
                    if rms(chunk) >= VOICED_RMS:
                        self.voiced_at.append((len(self.received), time.monotonic()))
                    self.received += chunk
