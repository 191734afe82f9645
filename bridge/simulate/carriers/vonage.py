"""Vonage Voice API websockets from Vonage's side (digest §5.4), for the simulated caller.

Vonage → bridge: one text frame ``websocket:connected`` with the ``content-type`` and the NCCO
endpoint's ``headers`` flattened at the top level (at most 512 bytes of them), then binary
frames of 16-bit little-endian PCM, 20 ms each, and text events: ``websocket:dtmf`` (top-level
``digit`` and ``duration``; ``nested_dtmf=True`` sends the older ``{"dtmf": {…}}`` shape),
``websocket:notify`` with the payload of each ``notify`` once the audio before it has played,
``websocket:cleared`` after a ``clear``. A caller hang-up just closes the socket.

Bridge → Vonage, checked strictly: binary frames of exactly 20 ms at the stream's rate (Vonage
plays nothing else), ``{"action":"clear"}`` and ``{"action":"notify","payload":{…}}`` with an
object payload of the bridge's choosing — the wire gives it back untouched. Vonage's docs do
not say whether a clear answers the notifies it flushed; by default it does not
(``notify_flushed=True`` answers them after ``websocket:cleared``).
"""

from __future__ import annotations

import json
import uuid as uuid_module
from collections.abc import Mapping

from bridge.simulate.carriers.base import (
    BridgeClear,
    BridgeMark,
    BridgeMedia,
    BridgeMessage,
    CallerWire,
    Frame,
    bad,
    json_object,
)

__all__ = ["VonageWire"]

MAX_HEADERS_BYTES = 512


class VonageWire(CallerWire):
    carrier = "vonage"

    def __init__(
        self,
        *,
        rate: int = 16000,
        uuid: str | None = None,
        caller: str = "447700900001",
        called: str = "447700900002",
        content_type: str | None = None,
        nested_dtmf: bool = False,
        notify_flushed: bool = False,
    ) -> None:
        if rate not in (8000, 16000, 24000):
            raise ValueError(f"Vonage streams L16 at 8000, 16000 or 24000 Hz, not {rate}")
        self.audio_format = f"pcm16/{rate}"
        super().__init__()
        self.rate = rate
        self.frame_bytes = rate // 1000 * 2 * 20
        self.uuid = uuid or str(uuid_module.uuid4())
        self.call_sid = self.uuid  # the NCCO puts the call's uuid in the headers
        self.caller, self.called = caller, called
        self.content_type = content_type or f"audio/l16;rate={rate}"
        self.nested_dtmf = nested_dtmf
        self.notify_flushed = notify_flushed
        self.notifies = 0  # notify commands received
        self.clears = 0

    def opening(self, parameters: Mapping[str, str]) -> list[Frame]:
        headers = {"uuid": self.uuid, "from": self.caller, "to": self.called, **parameters}
        if len(json.dumps(headers).encode()) > MAX_HEADERS_BYTES:
            raise ValueError(f"Vonage takes at most {MAX_HEADERS_BYTES} bytes of NCCO headers")
        connected = {"event": "websocket:connected", "content-type": self.content_type}
        return [json.dumps({**connected, **headers})]

    def media(self, ulaw: bytes) -> Frame:
        return self.to_wire(ulaw)

    def dtmf(self, digit: str) -> Frame:
        if self.nested_dtmf:
            return json.dumps(
                {"event": "websocket:dtmf", "dtmf": {"digit": digit, "duration": 260}}
            )
        return json.dumps({"event": "websocket:dtmf", "digit": digit, "duration": 260})

    def hangup(self) -> Frame | None:
        return None  # Vonage closes the socket; there is no hang-up event

    def mark_played(self, name: str) -> Frame | None:
        return json.dumps({"event": "websocket:notify", "payload": json.loads(name)})

    def cleared(self, flushed: list[str]) -> list[Frame]:
        frames: list[Frame] = [json.dumps({"event": "websocket:cleared"})]
        if self.notify_flushed:
            frames += [
                json.dumps({"event": "websocket:notify", "payload": json.loads(n)}) for n in flushed
            ]
        return frames

    def parse(self, raw: str | bytes) -> list[BridgeMessage]:
        if isinstance(raw, bytes):
            if len(raw) != self.frame_bytes:
                raise bad(
                    f"binary frame of {len(raw)} bytes: Vonage plays 20 ms frames of "
                    f"{self.frame_bytes} bytes at {self.rate} Hz",
                    raw,
                )
            return [BridgeMedia(self.from_wire(raw))]
        message = json_object(raw, "Vonage")
        action = message.get("action")
        if action == "clear":
            self.clears += 1
            return [BridgeClear()]
        if action == "notify":
            payload = message.get("payload")
            if not isinstance(payload, dict):
                raise bad("notify without an object payload", raw)
            self.notifies += 1
            # the payload itself is the mark's name: it comes back exactly as it was sent
            return [BridgeMark(json.dumps(payload, sort_keys=True, separators=(",", ":")))]
        raise bad(f"unknown action {action!r}", raw)
