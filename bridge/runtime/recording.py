"""A call's recording file: its stereo timeline appended to a WAV file as the call goes.

:class:`CallRecording` owns one file in the recordings directory, named after the call id (never a
path from outside: an id that is not a plain token is refused). It feeds a
:class:`~bridge.audio.recorder.StereoTimeline` — caller left, agent right — and appends what has
settled every :data:`BLOCK_S` of call time, so memory stays small however long the call. The RIFF
and data sizes are patched every :data:`PATCH_S` of audio and at the end, so a process that dies
mid-call leaves a playable file short of at most its last seconds.

The writes are ordinary buffered writes to the page cache (16 KB per half second at 8 kHz, no
fsync) on the event loop, well below a millisecond. A disk error (full, gone, read-only) ends the
*recording*, never the call: ``on_error`` hears of it once, with the reason, and every later call
is a no-op. Like the timeline it reads no clock: ``now`` is the runtime's, as is ``origin``.

The runtime feeds caller frames from its carrier loop and wraps the call's carrier link in a
:class:`RecordingLink`, so whatever is played to the caller (the agent, hold music, keypad tones)
and every clear reach the recording, wherever in the runtime they come from.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from bridge.audio.recorder import WAV_HEADER_BYTES, StereoTimeline, stereo_wav_header
from bridge.runtime.link import CarrierLink

if TYPE_CHECKING:
    from bridge.runtime.call import CallRuntime

log = logging.getLogger(__name__)

__all__ = [
    "BLOCK_S",
    "PATCH_S",
    "RECORDING_NAME",
    "CallRecording",
    "RecordingLink",
    "failure_reason",
    "record_call",
    "recording_name",
]

BLOCK_S = 0.5
"""Settled audio is appended once this much call time has gathered."""
PATCH_S = 5.0
"""The header's sizes are brought up to date after this much audio (and when the file closes)."""
RECORDING_NAME = re.compile(r"[0-9A-Za-z_-]{1,72}\.wav")
"""What a recording's file name looks like: a call id, ``.wav`` (no directory, no dots)."""
_MAX_DATA = 0xFFFFFFFF - 36  # what a RIFF header can count


def recording_name(call_id: str, attempt: int = 0) -> str:
    """The file name of ``call_id``'s recording (``-2``… for a second stream of the same call)."""
    name = f"{call_id}.wav" if attempt == 0 else f"{call_id}-{attempt + 1}.wav"
    if not RECORDING_NAME.fullmatch(name):
        raise ValueError(f"a call id cannot name a file: {call_id!r}")
    return name


class CallRecording:
    """One call's WAV file, written as the call goes (see the module docstring)."""

    def __init__(
        self,
        file: BinaryIO,
        name: str,
        fmt: str,
        *,
        origin: float,
        on_error: Callable[[str], None],
    ) -> None:
        self.name = name
        """The file's name in the recordings directory (what the journal keeps)."""
        self.timeline = StereoTimeline(fmt)
        self._file: BinaryIO | None = file
        self._origin = origin
        self._on_error = on_error
        rate = self.timeline.rate
        self._rate = rate
        self._block = round(BLOCK_S * rate)
        self._patch_bytes = round(PATCH_S * rate) * 4
        self._data = 0  # bytes of samples written
        self._patched = 0  # ... of which the header counts
        file.write(stereo_wav_header(rate, 0))
        file.flush()

    @classmethod
    def open(
        cls,
        directory: Path,
        call_id: str,
        fmt: str,
        *,
        origin: float,
        on_error: Callable[[str], None],
    ) -> CallRecording:
        """Create the call's file (mode 0600; the directory too, 0700). Raises ``OSError`` if
        it cannot, ``ValueError`` for a call id that is no file name."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for attempt in range(10):
            name = recording_name(call_id, attempt)
            try:
                fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # the call's stream came back: keep the first recording
                continue
            file = os.fdopen(fd, "wb")
            try:
                return cls(file, name, fmt, origin=origin, on_error=on_error)
            except BaseException:
                file.close()
                with contextlib.suppress(OSError):
                    (directory / name).unlink()
                raise
        raise FileExistsError(f"call {call_id} has ten recordings already")

    @property
    def closed(self) -> bool:
        return self._file is None

    # -- the call's audio (the runtime's clock in ``now``) --------------------------------------

    def caller(self, payload: bytes, now: float) -> None:
        """A caller frame, as it arrived: the hot path, so only the frame is copied."""
        if self._file is None:
            return
        timeline = self.timeline
        timeline.caller(payload, now - self._origin)
        if timeline.caller_end - timeline.taken >= self._block:
            self._write(timeline.take())

    def agent(self, payload: bytes, now: float) -> None:
        """Agent audio, as it went to the carrier."""
        if self._file is not None:
            self.timeline.agent(payload, now - self._origin)

    def clear(self, now: float) -> None:
        """The carrier was told to drop the agent audio it had not played."""
        if self._file is not None:
            self.timeline.clear(now - self._origin)

    def close(self, now: float) -> None:
        """Write the rest, bring the header up to date and close the file."""
        if self._file is None:
            return
        if not self._write(self.timeline.finish(now - self._origin)):
            return
        file, self._file = self._file, None
        assert file is not None
        try:
            self._patch(file)
            file.close()
        except OSError as exc:
            self._file = file
            self._fail(exc)

    # -- the file -----------------------------------------------------------------------------

    def _write(self, block: bytes) -> bool:
        """Append ``block``; False if the recording has failed (now or before)."""
        file = self._file
        if file is None:
            return False
        if self._data + len(block) > _MAX_DATA:
            self._fail(OSError("the recording reached the WAV size limit (4 GiB)"))
            return False
        try:
            file.write(block)
            self._data += len(block)
            if self._data - self._patched >= self._patch_bytes:
                self._patch(file)
            file.flush()
        except OSError as exc:
            self._fail(exc)
            return False
        return True

    def _patch(self, file: BinaryIO) -> None:
        file.seek(0)
        file.write(stereo_wav_header(self._rate, self._data))
        file.seek(WAV_HEADER_BYTES + self._data)
        file.flush()
        self._patched = self._data

    def _fail(self, exc: OSError) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError, ValueError):
                self._patch(file)  # what is there stays playable (it needs no new space)
            with contextlib.suppress(OSError):
                file.close()
        self._on_error(f"recording stopped: {failure_reason(exc)}")


def failure_reason(exc: OSError | ValueError) -> str:
    """What went wrong, without the file's path: it goes to the journal, the server's paths not."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc.args[0]) if exc.args else type(exc).__name__


class RecordingLink:
    """A :class:`~bridge.runtime.link.CarrierLink` that also records what it carries: every piece
    of audio sent to the caller (the agent, hold music, keypad tones) and every clear, timed with
    the runtime's ``clock``."""

    def __init__(
        self, link: CarrierLink, recording: CallRecording, clock: Callable[[], float]
    ) -> None:
        self.inner = link
        self._recording = recording
        self._clock = clock

    async def play(self, payload: bytes) -> None:
        self._recording.agent(payload, self._clock())
        await self.inner.play(payload)

    async def mark(self, name: str) -> None:
        await self.inner.mark(name)

    async def clear(self) -> None:
        self._recording.clear(self._clock())
        await self.inner.clear()

    async def pause(self) -> None:
        await self.inner.pause()

    async def resume(self) -> None:
        await self.inner.resume()

    async def answered(self, name: str) -> None:
        await self.inner.answered(name)

    def close(self) -> None:
        self.inner.close()


def record_call(call: CallRuntime, fmt: str) -> CallRecording | None:
    """Open ``call``'s recording and route everything sent to the caller through it; None (and
    a ``recording_error`` event) if it cannot be written — the call goes on without it."""
    assert call.link is not None

    def failed(message: str) -> None:
        log.warning("call %s: %s", call.call_id, message)
        call.journal("recording_error", message=message)

    try:
        recording = CallRecording.open(
            call.services.settings.recordings_dir,
            call.call_id,
            fmt,
            origin=call.clock(),
            on_error=failed,
        )
    except (OSError, ValueError) as exc:
        failed(f"recording not started: {failure_reason(exc)}")
        return None
    call.link = RecordingLink(call.link, recording, call.clock)
    call.services.journal.call_updated(call.call_id, recording=recording.name)
    return recording
