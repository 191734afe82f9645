"""The recording file: written as the call goes, readable at any moment, and never fatal."""

from __future__ import annotations

import errno
import io
import stat
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bridge.audio import g711
from bridge.runtime.recording import (
    BLOCK_S,
    CallRecording,
    RecordingLink,
    failure_reason,
    recording_name,
)

FRAME = b"\x00" * 160  # μ-law: a loud negative level


def read(path: Path) -> tuple[wave.Wave_read, np.ndarray]:
    wav = wave.open(io.BytesIO(path.read_bytes()))  # noqa: SIM115 (closed with the buffer)
    frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return wav, frames


def open_recording(directory: Path, call_id: str = "01CALL", **kw: Any) -> CallRecording:
    errors: list[str] = kw.pop("errors", [])
    return CallRecording.open(directory, call_id, "pcmu", origin=100.0, on_error=errors.append)


def test_the_file_is_named_after_the_call_and_private(tmp_path: Path) -> None:
    directory = tmp_path / "recordings"
    first = open_recording(directory)
    again = open_recording(directory)  # the same call's stream came back: a second file
    assert (first.name, again.name) == ("01CALL.wav", "01CALL-2.wav")
    assert stat.S_IMODE((directory / first.name).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    first.close(100.0)
    again.close(100.0)


@pytest.mark.parametrize("call_id", ["../etc", "a/b", "", ".", "x" * 80, "01 CALL"])
def test_a_call_id_that_is_no_file_name_is_refused(tmp_path: Path, call_id: str) -> None:
    with pytest.raises(ValueError, match="cannot name a file"):
        recording_name(call_id)
    with pytest.raises(ValueError, match="cannot name a file"):
        open_recording(tmp_path, call_id)
    assert list(tmp_path.iterdir()) == []


def test_audio_is_appended_as_it_settles_and_the_header_kept_playable(tmp_path: Path) -> None:
    recording = open_recording(tmp_path)
    path = tmp_path / recording.name
    assert path.stat().st_size == 44  # a valid, empty WAV from the start
    recording.agent(g711.pcm16_to_ulaw(np.full(800, 3000, "<i2").tobytes()), 100.02)
    frames = 0
    while frames * 0.02 < BLOCK_S:  # before half a second nothing needs writing
        assert path.stat().st_size == 44
        frames += 1
        recording.caller(FRAME, 100.0 + frames * 0.02)
    assert path.stat().st_size == 44 + 4000 * 4  # written; only a little is held back
    assert recording.timeline.ready < 4000
    for _ in range(5 * 50):  # five more seconds: the header is brought up to date meanwhile
        frames += 1
        recording.caller(FRAME, 100.0 + frames * 0.02)
    wav, samples = read(path)  # as a crash would leave it
    assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
    assert wav.getnframes() >= 5 * 8000
    left, right = samples[0::2], samples[1::2]
    assert set(left) == {int(np.frombuffer(g711.ulaw_to_pcm16(b"\x00"), "<i2")[0])}
    assert (right[:800] != 0).all() and not right[800:].any()  # no caller audio yet: at 0

    recording.close(100.0 + frames * 0.02)
    assert recording.closed
    wav, samples = read(path)
    assert wav.getnframes() == frames * 160
    assert path.stat().st_size == 44 + frames * 160 * 4
    recording.caller(FRAME, 200.0)  # after close: nothing, no error
    recording.close(200.0)


class FullDisk(io.BytesIO):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(
                errno.ENOSPC, "No space left on device", "recordings/not-for-the-journal.wav"
            )
        return super().write(data)


def test_a_disk_error_stops_the_recording_once_and_quietly() -> None:
    errors: list[str] = []
    recording = CallRecording(FullDisk(10_000), "x.wav", "pcmu", origin=0.0, on_error=errors.append)
    for i in range(200):
        recording.caller(FRAME, (i + 1) * 0.02)
        recording.agent(FRAME, (i + 1) * 0.02)
        recording.clear((i + 1) * 0.02)
    recording.close(5.0)
    assert errors == ["recording stopped: No space left on device"]  # no path in the journal
    assert recording.closed


def test_a_failure_at_close_is_reported() -> None:
    errors: list[str] = []
    disk = FullDisk(44 + 4000 * 4)  # room for the first block, not for the rest
    recording = CallRecording(disk, "x.wav", "pcmu", origin=0.0, on_error=errors.append)
    for i in range(30):
        recording.caller(FRAME, (i + 1) * 0.02)
    recording.close(0.6)
    assert errors == ["recording stopped: No space left on device"]


def test_failure_reasons_never_carry_paths() -> None:
    assert failure_reason(FileNotFoundError(2, "No such file or directory", "/a/b")) == (
        "No such file or directory"
    )
    assert failure_reason(OSError("too long")) == "too long"
    assert failure_reason(OSError()) == "OSError"
    assert failure_reason(ValueError("bad id")) == "bad id"


class Link:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    async def play(self, payload: bytes) -> None:
        self.calls.append(("play", len(payload)))

    async def mark(self, name: str) -> None:
        self.calls.append(("mark", name))

    async def clear(self) -> None:
        self.calls.append(("clear", None))

    async def pause(self) -> None:
        self.calls.append(("pause", None))

    async def resume(self) -> None:
        self.calls.append(("resume", None))

    async def answered(self, name: str) -> None:
        self.calls.append(("answered", name))

    def close(self) -> None:
        self.calls.append(("close", None))


async def test_the_recording_link_records_what_it_passes_on(tmp_path: Path) -> None:
    now = [100.0]
    inner = Link()
    recording = open_recording(tmp_path)
    link = RecordingLink(inner, recording, lambda: now[0])
    for i in range(10):
        now[0] = 100.0 + (i + 1) * 0.02
        recording.caller(FRAME, now[0])
    await link.play(b"\x10" * 1600)  # 200 ms from 0.2 s
    await link.mark("m1")
    now[0] = 100.3
    for i in range(5):
        recording.caller(FRAME, 100.2 + (i + 1) * 0.02)
    await link.clear()  # at 0.3 s: 100 ms played
    await link.pause()
    await link.resume()
    await link.answered("m1")
    link.close()
    recording.close(100.3)
    assert [name for name, _ in inner.calls] == [
        "play", "mark", "clear", "pause", "resume", "answered", "close",
    ]  # fmt: skip
    _, samples = read(tmp_path / recording.name)
    right = samples[1::2]
    assert len(right) == 2400
    assert (right[1600:2400] != 0).all() and not right[:1600].any()
