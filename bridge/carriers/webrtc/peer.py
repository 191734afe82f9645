"""The bridge's end of a browser call: an aiortc peer that looks like a carrier socket.

:class:`BrowserPeer` answers the browser's SDP offer and then behaves as the runtime's
``CarrierSocket`` (``receive`` / ``send`` / ``close``), speaking the frames of
:mod:`bridge.carriers.webrtc.codec`:

* **Caller audio**: Opus from the browser, decoded by aiortc (48 kHz stereo), is resampled
  *once*, by libswresample (PyAV, bundled with aiortc), straight to the call's format — the
  format the agent's engine speaks, so the runtime does not resample again.
* **Agent audio**: :class:`AgentTrack` is the outbound track. aiortc's RTP sender pulls a frame
  from it whenever it is free; the track hands one 20 ms frame per call on an absolute schedule
  (``start + n · 20 ms``, no drift, no bursts) — silence when there is nothing to say. Marks
  queued between frames are answered when every frame before them has been handed to the
  sender: a browser call's playback clock is its RTP send clock (the browser's jitter buffer,
  tens of ms, comes on top). A clear drops the queued audio and answers its marks at once.
* **Control** rides a data channel the console opens (``"control"``): ``{"type": "dtmf",
  "digit"}`` and ``{"type": "hangup"}`` from the browser; ``{"type": "hangup", "reason"}`` to
  it when the agent ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription
from av import AudioFrame, AudioResampler

from bridge.audio import g711
from bridge.audio.transcode import bytes_per_ms, parse_format, silence_byte
from bridge.carriers.base import Frame
from bridge.carriers.webrtc.codec import control

__all__ = ["AgentTrack", "BrowserPeer", "IceServer", "check_offer"]

log = logging.getLogger(__name__)

FRAME_S = 0.020
MAX_LATE_S = 0.100
"""A sender this far behind its schedule (a stalled loop) starts a new one rather than burst."""
MAX_INBOX = 500
"""Frames from the browser not yet read by the runtime (10 s of audio) before audio is dropped."""


class AgentTrack(MediaStreamTrack):
    """The agent's voice to the browser: 20 ms frames on an absolute schedule, marks answered as
    they are reached (see the module docstring)."""

    kind = "audio"

    def __init__(
        self,
        audio_format: str,
        on_mark: Callable[[str], None],
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        encoding, self._rate = parse_format(audio_format)
        self._decode = g711.ulaw_to_pcm16 if encoding == "pcmu" else None
        if encoding == "pcma":
            self._decode = g711.alaw_to_pcm16
        self._frame_bytes = bytes_per_ms(audio_format) * 20
        self._silence = bytes([silence_byte(audio_format)]) * self._frame_bytes
        self._samples = self._rate // 50
        self._time_base = fractions.Fraction(1, self._rate)
        self._on_mark = on_mark
        self._clock = clock or asyncio.get_running_loop().time
        self._queue: deque[bytes | str] = deque()  # whole frames of audio, or a mark's name
        self._partial = b""
        self._start: float | None = None
        self._sent = 0  # frames handed to the sender since ``_start``
        self._pts = 0
        self.audio_frames = 0
        """Frames of agent audio (not silence) handed to the sender."""

    def push(self, payload: bytes) -> None:
        """Queue agent audio (any length: cut into whole frames, the rest waits)."""
        data = self._partial + payload if self._partial else payload
        size = self._frame_bytes
        whole = len(data) - len(data) % size
        for offset in range(0, whole, size):
            self._queue.append(data[offset : offset + size])
        self._partial = data[whole:]

    def mark(self, name: str) -> None:
        """Answer ``name`` once every frame queued before it has been sent."""
        if self._partial:  # the end of a turn: pad its last frame
            self._queue.append(self._partial + self._silence[len(self._partial) :])
            self._partial = b""
        self._queue.append(name)

    def clear(self) -> None:
        """Drop the audio not yet sent; answer its marks now (as flushed)."""
        marks = [item for item in self._queue if isinstance(item, str)]
        self._queue.clear()
        self._partial = b""
        for name in marks:
            self._on_mark(name)

    @property
    def queued_ms(self) -> int:
        """Agent audio queued and not yet sent."""
        return 20 * sum(1 for item in self._queue if not isinstance(item, str))

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = self._clock()
        if self._start is None or now - (self._start + self._sent * FRAME_S) > MAX_LATE_S:
            self._start, self._sent = now, 0
        due = self._start + self._sent * FRAME_S
        if due > now:
            await asyncio.sleep(due - now)
        # The previous frame has now played out at the sender: marks after it are reached.
        queue = self._queue
        while queue and isinstance(queue[0], str):
            self._on_mark(queue.popleft())  # type: ignore[arg-type]
        payload = self._silence
        if queue:
            payload = queue.popleft()  # type: ignore[assignment]
            self.audio_frames += 1
        self._sent += 1
        return self._frame(payload)

    def _frame(self, payload: bytes) -> AudioFrame:
        pcm = self._decode(payload) if self._decode is not None else payload
        frame = AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(pcm)
        frame.sample_rate = self._rate
        frame.time_base = self._time_base
        frame.pts = self._pts
        self._pts += self._samples
        return frame


def check_offer(sdp: str, kind: str = "offer") -> None:
    """Raise ``ValueError`` unless ``sdp`` is an offer with an audio stream we can receive."""
    if kind != "offer":
        raise ValueError(f"expected an SDP offer, not {kind!r}")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the text trips it into
        raise ValueError(f"not valid SDP ({type(exc).__name__}: {exc})"[:200]) from None
    audio = [m for m in description.media if m.kind == "audio"]
    if not audio:
        raise ValueError("the offer has no audio stream")
    if not any(
        c.mimeType.lower() in ("audio/opus", "audio/pcmu", "audio/pcma")
        for m in audio
        for c in m.rtp.codecs
    ):
        raise ValueError("the offer's audio has none of Opus, PCMU or PCMA")


IceServer = Mapping[str, Any]
"""One ICE server as the browser's ``RTCIceServer``: ``{"urls", "username", "credential"}``."""


class BrowserPeer:
    """One browser call's WebRTC peer, as the runtime's carrier socket."""

    def __init__(
        self,
        *,
        call_id: str,
        audio_format: str,
        parameters: Mapping[str, str],
        ice_servers: Sequence[IceServer] = (),
    ) -> None:
        self.call_id = call_id
        self.audio_format = audio_format
        self._parameters = dict(parameters)
        encoding, rate = parse_format(audio_format)
        self._encode = {"pcmu": g711.pcm16_to_ulaw, "pcma": g711.pcm16_to_alaw}.get(encoding)
        self._resampler = AudioResampler(format="s16", layout="mono", rate=rate)
        servers = [
            RTCIceServer(
                urls=list(s["urls"]) if not isinstance(s["urls"], str) else s["urls"],
                username=s.get("username"),
                credential=s.get("credential"),
            )
            for s in ice_servers
        ]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.track = AgentTrack(audio_format, self._mark_reached)
        self._inbox: asyncio.Queue[Frame | None] = asyncio.Queue()
        self._channel: RTCDataChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._ended = False  # the hang-up (or end of stream) is in the inbox
        self.caller_frames = 0
        self.dropped_frames = 0
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def answer(self, sdp: str, kind: str = "offer") -> RTCSessionDescription:
        """Take the browser's offer; return the answer (ICE gathered: no trickle needed).

        Raises ``ValueError`` for an offer that is not valid SDP or has no audio.
        """
        check_offer(sdp, kind)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self.pc.addTrack(self.track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        description = self.pc.localDescription
        self._put(
            control(
                "start",
                call_id=self.call_id,
                format=self.audio_format,
                parameters=self._parameters,
            )
        )
        return description

    # -- the runtime's CarrierSocket -----------------------------------------------------------

    async def receive(self) -> Frame | None:
        frame = await self._inbox.get()
        if frame is None:
            self._inbox.put_nowait(None)  # every later receive sees the end too
        return frame

    async def send(self, frame: Frame) -> None:
        if self._closed:
            return
        if isinstance(frame, bytes):
            self.track.push(frame)
            return
        message = orjson.loads(frame)
        event = message["event"]
        if event == "mark":
            self.track.mark(message["name"])
        elif event == "clear":
            self.track.clear()
        elif event == "hangup":
            self._tell_browser({"type": "hangup", "reason": "the agent ended the call"})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        self._tell_browser({"type": "ended", "reason": reason})
        for task in list(self._tasks):
            task.cancel()
        self.track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
        self._end()

    # -- aiortc callbacks ----------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        reader = self._read_caller(track) if track.kind == "audio" else self._discard(track)
        task = asyncio.get_running_loop().create_task(reader)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        self._channel = channel
        channel.on("message", self._on_message)

    def _on_message(self, message: str | bytes) -> None:
        try:
            data = orjson.loads(message)
            kind = data["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._put(control("unreadable", text=str(message)[:80]))  # journaled by the codec
            return
        if kind == "hangup":
            self._put(control("hangup", reason="caller hung up"))
            self._ended = True
        else:
            fields = {k: v for k, v in data.items() if k != "type"}
            self._put(control(str(kind), **fields))

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        log.info("call %s: WebRTC connection %s", self.call_id, state)
        if state in ("failed", "closed") and not self._closed:
            self._put(control("hangup", reason=f"browser connection {state}"))
            self._ended = True

    # -- helpers -------------------------------------------------------------------------------

    async def _read_caller(self, track: MediaStreamTrack) -> None:
        encode = self._encode
        try:
            while True:
                frame = await track.recv()
                for out in self._resampler.resample(frame):  # type: ignore[arg-type]
                    pcm = out.to_ndarray().tobytes()
                    self._put_audio(encode(pcm) if encode is not None else pcm)
        except MediaStreamError:
            if not self._closed:
                self._put(control("hangup", reason="browser stopped sending audio"))
                self._ended = True

    async def _discard(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    def _mark_reached(self, name: str) -> None:
        self._put(control("mark", name=name))

    def _put_audio(self, payload: bytes) -> None:
        if self._inbox.qsize() >= MAX_INBOX:  # the runtime is stuck: do not hoard audio
            self.dropped_frames += 1
            return
        self.caller_frames += 1
        self._put(payload)

    def _put(self, frame: Frame) -> None:
        if not self._ended:
            self._inbox.put_nowait(frame)

    def _end(self) -> None:
        self._ended = True
        self._inbox.put_nowait(None)

    def _tell_browser(self, message: Mapping[str, Any]) -> None:
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            with contextlib.suppress(Exception):
                channel.send(orjson.dumps(message).decode())
