"""Plivo Audio Streams from Plivo's side (digest §5.2), for the simulated caller.

Plivo → bridge frames are camelCase with *numeric* ``sequenceNumber``s; ``start`` carries the
``mediaFormat`` chosen by ``<Stream contentType>`` and the ``extraHeaders`` joined with ``;``.
There is no ``stop``: a caller hanging up just closes the socket. A ``checkpoint`` is answered
with ``playedStream`` once the audio before it has played; a ``clearAudio`` with one
``clearedAudio`` — the checkpoints it dropped are never answered ("playedStream will only be
emitted if the preceding events were played successfully").

Bridge → Plivo frames are checked strictly: ``playAudio`` in exactly the stream's
``contentType`` and ``sampleRate`` (Plivo asks never to switch mid-stream) with a non-empty
base64 payload of whole samples, ``checkpoint`` with our ``streamId`` and a name,
``clearAudio`` with our ``streamId``; nothing else.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping

from bridge.simulate.carriers.base import (
    BridgeClear,
    BridgeMark,
    BridgeMedia,
    BridgeMessage,
    CallerWire,
    Frame,
    bad,
    base64_audio,
    json_object,
)

__all__ = ["CONTENT_TYPES", "PlivoWire"]

CONTENT_TYPES = {
    "audio/x-mulaw;rate=8000": ("audio/x-mulaw", 8000, "pcmu"),
    "audio/x-l16;rate=8000": ("audio/x-l16", 8000, "pcm16/8000"),
    "audio/x-l16;rate=16000": ("audio/x-l16", 16000, "pcm16/16000"),
}
"""``<Stream contentType>`` → (``encoding``, ``sampleRate``, the simulator's format)."""


class PlivoWire(CallerWire):
    carrier = "plivo"

    def __init__(
        self,
        *,
        content_type: str = "audio/x-mulaw;rate=8000",
        call_id: str | None = None,
        account_id: str = "MAZDQ1ZJIYMDZKMMZKYM",
        epoch_ms: int = 1_767_225_600_000,
    ) -> None:
        if content_type not in CONTENT_TYPES:
            raise ValueError(f"Plivo streams {', '.join(CONTENT_TYPES)}, not {content_type!r}")
        self.content_type = content_type
        self.encoding, self.sample_rate, self.audio_format = CONTENT_TYPES[content_type]
        super().__init__()
        self.call_id = call_id or str(uuid.uuid4())
        self.call_sid = self.call_id  # Plivo's CallUUID: the journal's call_sid
        self.stream_id = str(uuid.uuid4())
        self.account_id = account_id
        self.epoch_ms = epoch_ms
        self.sequence = 0
        self.chunks = 0
        self.extra_headers = ""

    def _event(self, event: str, body: Mapping[str, object]) -> str:
        self.sequence += 1
        message = {"event": event, "sequenceNumber": self.sequence, **body}
        return json.dumps(message, separators=(",", ":"))

    def opening(self, parameters: Mapping[str, str]) -> list[Frame]:
        self.extra_headers = ";".join(f"{k}={v}" for k, v in parameters.items())
        start = {
            "callId": self.call_id,
            "streamId": self.stream_id,
            "accountId": self.account_id,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": self.encoding, "sampleRate": self.sample_rate},
        }
        return [self._event("start", {"start": start, "extra_headers": self.extra_headers})]

    def media(self, ulaw: bytes) -> Frame:
        self.chunks += 1
        media = {
            "track": "inbound",
            "timestamp": str(self.epoch_ms + (self.chunks - 1) * 20),
            "chunk": self.chunks,
            "payload": base64.b64encode(self.to_wire(ulaw)).decode(),
        }
        body = {"streamId": self.stream_id, "media": media, "extra_headers": self.extra_headers}
        return self._event("media", body)

    def dtmf(self, digit: str) -> Frame:
        dtmf = {"track": "inbound", "digit": digit, "timestamp": str(self.epoch_ms)}
        return self._event("dtmf", {"streamId": self.stream_id, "dtmf": dtmf})

    def hangup(self) -> Frame | None:
        return None  # no stop event: the socket closes

    def mark_played(self, name: str) -> Frame | None:
        return self._event("playedStream", {"streamId": self.stream_id, "name": name})

    def cleared(self, flushed: list[str]) -> list[Frame]:
        return [self._event("clearedAudio", {"streamId": self.stream_id})]

    def parse(self, raw: str | bytes) -> list[BridgeMessage]:
        message = json_object(raw, "Plivo")
        event = message.get("event")
        if event == "playAudio":
            return [BridgeMedia(self._play_audio(message, raw))]
        if event not in ("checkpoint", "clearAudio"):
            raise bad(f"unknown event {event!r}", raw)
        if message.get("streamId") != self.stream_id:
            raise bad(f"{event} without this stream's streamId", raw)
        if event == "clearAudio":
            return [BridgeClear()]
        name = message.get("name")
        if not isinstance(name, str) or not name:
            raise bad("checkpoint without a name", raw)
        return [BridgeMark(name)]

    def _play_audio(self, message: dict[str, object], raw: str | bytes) -> bytes:
        media = message.get("media")
        if not isinstance(media, dict):
            raise bad("playAudio without a media object", raw)
        if media.get("contentType") != self.encoding:
            raise bad(f"playAudio contentType is not the stream's {self.encoding}", raw)
        rate = media.get("sampleRate")
        if not isinstance(rate, int) or isinstance(rate, bool) or rate != self.sample_rate:
            raise bad(f"playAudio sampleRate is not the number {self.sample_rate}", raw)
        audio = base64_audio(media.get("payload"), "playAudio", raw)
        if not audio:
            raise bad("playAudio with no audio", raw)
        if audio.startswith(b"RIFF"):
            raise bad("playAudio payload is a WAV file, not raw audio", raw)
        if self.encoding == "audio/x-l16" and len(audio) % 2:
            raise bad(f"playAudio of {len(audio)} bytes is not whole 16-bit samples", raw)
        return self.from_wire(audio)
