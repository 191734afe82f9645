"""Browser calls over WebRTC, sans-I/O: the frames between the peer and the runtime.

A browser call has no carrier socket: :mod:`bridge.carriers.webrtc.peer` terminates WebRTC
(aiortc) in the bridge and speaks to the runtime in frames, like any carrier. Audio both ways is
binary frames in the call's format (chosen per agent so that the engine needs no second
resampling: ``"pcmu"`` or ``"pcm16/<rate>"``); control is JSON text:

Peer → runtime (parsed here):

* ``{"event": "start", "call_id", "format", "parameters": {…}}`` — the peer connection is set up;
  ``parameters`` are the offer's agent and context variables.
* ``{"event": "mark", "name"}`` — the browser's outbound track has sent every frame before mark
  ``name`` (or a clear flushed it): the playback clock of a browser call is the RTP send clock.
* ``{"event": "dtmf", "digit"}`` — a key pressed on the console's keypad (data channel).
* ``{"event": "hangup", "reason"}`` — the browser hung up, or its connection failed.

Runtime → peer (built here): binary audio, ``{"event": "mark", "name"}``, ``{"event": "clear"}``
and ``{"event": "hangup"}``.
"""

from __future__ import annotations

from typing import Any

import orjson

from bridge.audio.transcode import parse_format
from bridge.carriers.base import (
    DTMF_KEYS,
    CarrierCodec,
    audio_format,
    describe,
    field_object,
    field_text,
    json_frame,
)
from bridge.errors import CarrierProtocolError, CarrierStartRefused
from bridge.session import events as ev

__all__ = ["DTMF_KEYS", "WebRTCCodec", "control"]


def control(event: str, **fields: Any) -> str:
    """One control frame between the peer and the runtime."""
    return orjson.dumps({"event": event, **fields}).decode()


class WebRTCCodec(CarrierCodec):
    """Frames of one browser call (see the module docstring)."""

    carrier = "webrtc"
    playback = "marks"
    frame_ms = 20

    def __init__(self) -> None:
        self.started = False

    def parse(self, data: str | bytes) -> ev.CarrierEvent | None:
        if isinstance(data, bytes):
            if not self.started:
                raise CarrierProtocolError("audio before start")
            return ev.CallerAudio(data) if data else None
        message = json_frame(data)
        event = message.get("event")
        if event == "start":
            return self._start(message)
        if not self.started:
            raise CarrierProtocolError(f"{describe(event)} before start")
        if event == "mark":
            return ev.PlaybackMark(field_text(message, "name"))
        if event == "dtmf":
            digit = field_text(message, "digit")
            if digit not in DTMF_KEYS:
                raise CarrierProtocolError(f"DTMF digit {describe(digit)} is not a key")
            return ev.CallerDtmf(digit)
        if event == "hangup":
            reason = message.get("reason")
            return ev.CallerHangup(reason if isinstance(reason, str) else "caller hung up")
        raise CarrierProtocolError(f"unknown event {describe(event)}")

    def _start(self, message: dict[str, Any]) -> ev.CallStarted:
        if self.started:
            raise CarrierProtocolError("a second start")
        call_id = field_text(message, "call_id")
        try:
            encoding, rate = parse_format(field_text(message, "format"))
        except ValueError as exc:  # the call cannot go on: end it now, saying why
            raise CarrierStartRefused(str(exc)) from None
        fmt = audio_format(encoding, rate)
        parameters = field_object(message, "parameters")
        self.started = True
        return ev.CallStarted(
            call_sid=call_id,
            stream_sid=call_id,
            custom_parameters={str(k): str(v) for k, v in parameters.items()},
            encoding=fmt,
            sample_rate=rate,
        )

    def media(self, payload: bytes) -> bytes:
        return payload

    def mark(self, name: str) -> str:
        return control("mark", name=name)

    def clear(self) -> str:
        return control("clear")

    def hangup(self) -> str:
        return control("hangup")
