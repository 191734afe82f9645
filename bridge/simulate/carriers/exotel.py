"""Exotel's Voicebot applet from Exotel's side (digest §5.3), for the simulated caller.

Exotel → bridge frames are snake_case with string ``sequence_number``s: ``connected``, ``start``
(``media_format.sample_rate`` a string), ``media``, ``dtmf``, ``mark`` echoes, ``stop``. Exotel
sends the caller's audio in ~100 ms chunks, so the wire gathers the simulator's 20 ms frames into
``chunk_ms`` chunks before sending them.

Bridge → Exotel frames are checked strictly, each with our ``stream_sid``: ``media`` whose audio
is a multiple of 320 bytes, at least 3.2 KB and at most 100 KB (anything else makes gaps in
Exotel's playback, so it is a violation here); ``mark`` with a name; ``clear``. Exotel's guide
does not say whether a ``clear`` answers the marks it dropped; this wire answers them at once, as
Twilio (whose protocol Exotel's follows) does — the bridge's ledger ignores such answers.
"""

from __future__ import annotations

import base64
import json
import secrets
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

__all__ = ["MAX_CHUNK_BYTES", "MIN_CHUNK_BYTES", "ExotelWire"]

MIN_CHUNK_BYTES, MAX_CHUNK_BYTES, CHUNK_MULTIPLE = 3200, 100_000, 320


class ExotelWire(CallerWire):
    carrier = "exotel"

    def __init__(
        self,
        *,
        sample_rate: int = 8000,
        mulaw: bool = False,
        chunk_ms: int = 100,
        call_sid: str | None = None,
        caller: str = "09876543210",
        called: str = "08047491899",
    ) -> None:
        if mulaw and sample_rate != 8000:
            raise ValueError("Exotel streams μ-law at 8000 Hz only")
        if sample_rate not in (8000, 16000, 24000):
            raise ValueError(f"Exotel streams 8000, 16000 or 24000 Hz, not {sample_rate}")
        if chunk_ms <= 0 or chunk_ms % 20:
            raise ValueError("chunk_ms must be a positive multiple of 20")
        self.mulaw = mulaw
        self.sample_rate = sample_rate
        self.audio_format = "pcmu" if mulaw else f"pcm16/{sample_rate}"
        super().__init__()
        self.chunk_frames = chunk_ms // 20
        self.call_sid = call_sid or secrets.token_hex(16)
        self.stream_sid = secrets.token_hex(16)
        self.account_sid = "exotel" + secrets.token_hex(4)
        self.caller, self.called = caller, called
        self.sequence = 0
        self.chunks = 0
        self._gathered: list[bytes] = []

    def _event(self, event: str, body: Mapping[str, object]) -> str:
        self.sequence += 1
        message = {"event": event, "sequence_number": str(self.sequence), **body}
        return json.dumps({**message, "stream_sid": self.stream_sid}, separators=(",", ":"))

    def opening(self, parameters: Mapping[str, str]) -> list[Frame]:
        media_format = {
            "encoding": "audio/x-mulaw" if self.mulaw else "audio/x-raw",
            "sample_rate": str(self.sample_rate),
            "bit_rate": "8" if self.mulaw else "16",
        }
        start = {
            "stream_sid": self.stream_sid,
            "call_sid": self.call_sid,
            "account_sid": self.account_sid,
            "from": self.caller,
            "to": self.called,
            "custom_parameters": dict(parameters),
            "media_format": media_format,
        }
        return [json.dumps({"event": "connected"}), self._event("start", {"start": start})]

    def media(self, ulaw: bytes) -> Frame | list[Frame]:
        self._gathered.append(self.to_wire(ulaw))
        if len(self._gathered) < self.chunk_frames:
            return []
        audio, self._gathered = b"".join(self._gathered), []
        self.chunks += 1
        media = {
            "chunk": str(self.chunks),
            "timestamp": str((self.chunks - 1) * self.chunk_frames * 20),
            "payload": base64.b64encode(audio).decode(),
        }
        return self._event("media", {"media": media})

    def dtmf(self, digit: str) -> Frame:
        return self._event("dtmf", {"dtmf": {"digit": digit, "duration": "200"}})

    def hangup(self) -> Frame | None:
        stop = {"call_sid": self.call_sid, "account_sid": self.account_sid, "reason": "callended"}
        return self._event("stop", {"stop": stop})

    def mark_played(self, name: str) -> Frame | None:
        return self._event("mark", {"mark": {"name": name}})

    def parse(self, raw: str | bytes) -> list[BridgeMessage]:
        message = json_object(raw, "Exotel")
        event = message.get("event")
        if event not in ("media", "mark", "clear"):
            raise bad(f"unknown event {event!r}", raw)
        if message.get("stream_sid") != self.stream_sid:
            raise bad(f"{event} without this stream's stream_sid", raw)
        if event == "clear":
            return [BridgeClear()]
        body = message.get(event)
        if not isinstance(body, dict):
            raise bad(f"{event} without a {event!r} object", raw)
        if event == "mark":
            if not isinstance(body.get("name"), str) or not body["name"]:
                raise bad("mark without a name", raw)
            return [BridgeMark(body["name"])]
        audio = base64_audio(body.get("payload"), "media", raw)
        size = len(audio)
        if size % CHUNK_MULTIPLE or not MIN_CHUNK_BYTES <= size <= MAX_CHUNK_BYTES:
            raise bad(
                f"media of {size} bytes (Exotel plays multiples of 320 bytes, 3200 to 100000)",
                raw,
            )
        return [BridgeMedia(self.from_wire(audio))]
