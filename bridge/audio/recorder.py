"""A call's two sides on one timeline: caller on the left channel, agent on the right.

:class:`StereoTimeline` is the sans-I/O core of a call recording. The runtime hands it caller
frames and agent audio as they pass through the bridge, each with ``now`` (seconds since the
recording began, from the runtime's clock — nothing here reads one), and takes interleaved
16-bit stereo PCM out as it *settles*; :mod:`bridge.runtime.recording` appends that to a WAV
file. Audio stays in the carrier's format until it is taken (G.711 is decoded then, in one
batch, off the per-frame path), at the carrier's rate (8 kHz for G.711, 8/16/24 kHz for PCM).

**The alignment model.** Positions are sample counts on the call's timeline.

* *Caller frames drive the timeline.* They arrive at real time and are laid end to end: the
  left channel is exactly the caller's audio, in order, and "now" is where it ends. Network
  jitter does not move anything.
* *Agent audio plays out in order at real time*, as the carrier's buffer plays it: a chunk starts
  at ``max(now, end of the agent audio before it)``.
* :meth:`~StereoTimeline.clear` (barge-in) drops the agent audio the carrier had not played yet,
  everything past "now".
* *Silence fills gaps on either channel*: between the agent's answers, and where the caller's
  stream stops. The caller channel counts as having stopped when the clock runs more than
  ``max_lag_s`` ahead of it (default 1 s: far above network jitter, far below a real pause in a
  stream; carriers send line silence, so this is rare). "now" is then the clock, and the
  caller's next frame lands at its own time, silence before it. (A shorter stop is not padded:
  the caller's audio closes up, and so does the agent's, since "now" is the caller's end — the
  two sides keep their order and distance to each other.)

Everything before the caller's end is final (new agent audio never starts earlier, and a clear
never reaches back), so :meth:`~StereoTimeline.take` hands it out and the core holds only the
caller audio since the last take (the writer takes every half second) and the agent audio not
played out yet (what the carrier buffers; while the caller's stream has stopped, also what the
agent said since). When the writer takes changes nothing in the result: the file is the same.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable

import numpy as np

from bridge.audio import g711
from bridge.audio.transcode import parse_format, silence_byte

__all__ = ["WAV_HEADER_BYTES", "StereoTimeline", "stereo_wav_header"]

WAV_HEADER_BYTES = 44
"""The canonical RIFF/WAVE header: ``RIFF`` size ``WAVE``, a 16-byte ``fmt `` chunk, ``data``."""

_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "pcmu": g711.ulaw_to_pcm16,
    "pcma": g711.alaw_to_pcm16,
}


def stereo_wav_header(rate: int, data_bytes: int) -> bytes:
    """The 44-byte header of a 16-bit PCM stereo WAV file holding ``data_bytes`` of samples.

    Sizes past what RIFF can say (4 GiB) are clamped: a reader then stops there.
    """
    data_bytes = min(data_bytes, 0xFFFFFFFF - 36)
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", 36 + data_bytes),
            b"WAVE",
            b"fmt ",
            struct.pack("<IHHIIHH", 16, 1, 2, rate, rate * 4, 4, 16),
            b"data",
            struct.pack("<I", data_bytes),
        )
    )


class StereoTimeline:
    """Caller and agent audio of one call, aligned (see the module docstring).

    ``fmt`` is the carrier's audio format (``"pcmu"``, ``"pcma"``, ``"pcm16/16000"``…). Every
    ``now`` is seconds since the recording began; it may stand still but must not go back.
    """

    __slots__ = (
        "_agent",
        "_agent_end",
        "_caller",
        "_decode",
        "_max_lag",
        "_silence",
        "_width",
        "caller_end",
        "rate",
        "taken",
    )

    def __init__(self, fmt: str, *, max_lag_s: float = 1.0) -> None:
        encoding, rate = parse_format(fmt)
        self.rate = rate
        self._decode = _DECODERS.get(encoding)
        self._width = 1 if self._decode is not None else 2  # bytes per sample in ``fmt``
        self._silence = bytes([silence_byte(fmt)]) * self._width  # one sample of it
        self._max_lag = round(max_lag_s * rate)
        self.taken = 0
        """Samples (per channel) handed out by :meth:`take` so far."""
        self.caller_end = 0
        """Where the caller's audio ends on the timeline (samples)."""
        self._caller = bytearray()  # caller audio (``fmt``) from ``taken`` to ``caller_end``
        self._agent: deque[tuple[int, bytes]] = deque()  # (start, audio in ``fmt``), in order
        self._agent_end = 0

    # -- in -------------------------------------------------------------------------------------

    def caller(self, payload: bytes, now: float) -> None:
        """A caller frame that arrived at ``now``: appended to the left channel."""
        count = len(payload) // self._width
        clock = int(now * self.rate)
        if clock - self.caller_end > self._max_lag:  # the stream had stopped: silence meanwhile
            gap = clock - count - self.caller_end
            if gap > 0:
                self._caller += self._silence * gap
                self.caller_end += gap
        if len(payload) != count * self._width:  # half a PCM16 sample: never on a sane carrier
            payload = payload[: count * self._width]
        self._caller += payload
        self.caller_end += count

    def agent(self, payload: bytes, now: float) -> None:
        """Agent audio sent to the carrier at ``now``: it plays after what is already queued."""
        count = len(payload) // self._width
        if not count:
            return
        start = max(self.now(now), self._agent_end)
        self._agent.append((start, payload[: count * self._width]))
        self._agent_end = start + count

    def clear(self, now: float) -> None:
        """The carrier dropped the agent audio it had not played yet (barge-in)."""
        cut = self.now(now)
        agent = self._agent
        while agent and agent[-1][0] >= cut:
            agent.pop()
        if agent:
            start, data = agent[-1]
            keep = (cut - start) * self._width
            if keep < len(data):
                agent[-1] = (start, data[:keep])
        self._agent_end = min(self._agent_end, cut)

    # -- out ------------------------------------------------------------------------------------

    def now(self, now: float) -> int:
        """The timeline's "now": the caller's end, or the clock while the caller has stopped."""
        clock = int(now * self.rate)
        return clock if clock - self.caller_end > self._max_lag else self.caller_end

    @property
    def ready(self) -> int:
        """Samples :meth:`take` would hand out now (the caller audio not taken yet)."""
        return self.caller_end - self.taken

    @property
    def agent_queued(self) -> int:
        """Agent audio (samples) on the timeline not taken yet."""
        return max(0, self._agent_end - self.taken)

    def take(self) -> bytes:
        """What has settled and was not taken yet, as interleaved PCM16 (caller left, agent
        right): everything up to the caller's end. When it is taken changes nothing else."""
        return self._take(self.caller_end)

    def finish(self, now: float) -> bytes:
        """Everything left at the end of the call: agent audio not played by ``now`` is dropped
        (the caller never heard it); a caller channel that had stopped is padded to ``now``."""
        self.clear(now)
        return self._take(self.now(now))

    def _take(self, end: int) -> bytes:
        count = end - self.taken
        if count <= 0:
            return b""
        width = self._width
        if self.caller_end < end:  # the caller had stopped: silence up to the end
            self._caller += self._silence * (end - self.caller_end)
            self.caller_end = end
        left = bytes(self._caller[: count * width])
        del self._caller[: count * width]
        out = np.zeros(2 * count, dtype="<i2")
        out[0::2] = np.frombuffer(self._pcm(left), dtype="<i2")
        right = out[1::2]
        agent, base = self._agent, self.taken
        run: list[bytes] = []  # pieces back to back (the usual case): decoded in one go
        run_at = run_end = base
        while agent:
            start, data = agent[0]
            stop = start + len(data) // width
            if start >= end:
                break
            low, high = max(start, base), min(stop, end)
            if low != run_end:
                self._lay(right, run, run_at - base)
                run, run_at = [], low
            run.append(data[(low - start) * width : (high - start) * width])  # whole: no copy
            run_end = high
            if stop > end:
                break  # the rest is taken next time
            agent.popleft()
        self._lay(right, run, run_at - base)
        self.taken = end
        return out.tobytes()

    def _lay(self, right: np.ndarray, run: list[bytes], at: int) -> None:
        if run:
            pcm = np.frombuffer(self._pcm(b"".join(run)), dtype="<i2")
            right[at : at + len(pcm)] = pcm

    def _pcm(self, data: bytes) -> bytes:
        return data if self._decode is None else self._decode(data)
