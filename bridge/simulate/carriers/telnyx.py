"""Telnyx media streaming from Telnyx's side (digest §5.1), for the simulated caller.

Telnyx → bridge frames are snake_case with string sequence numbers and the ``stream_id`` at the
top level; ``media`` carries ``chunk`` and ``timestamp``. With ``reorder=True`` the wire swaps
every pair of media frames on the way out, as Telnyx's network may (the chunk numbers keep the
true order). Bridge → Telnyx frames are checked strictly: ``media`` with a base64 payload of
PCMU (or PCMA) between 20 ms and 30 s, ``mark`` with a name, ``clear``; nothing else.
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

__all__ = ["TelnyxWire"]

MIN_PAYLOAD_MS, MAX_PAYLOAD_MS = 20, 30_000


class TelnyxWire(CallerWire):
    carrier = "telnyx"

    def __init__(
        self,
        *,
        codec: str = "PCMU",
        call_control_id: str | None = None,
        caller: str = "+15550100001",
        called: str = "+15550100002",
        reorder: bool = False,
    ) -> None:
        if codec not in ("PCMU", "PCMA"):
            raise ValueError(f"the simulated Telnyx stream speaks PCMU or PCMA, not {codec!r}")
        self.codec = codec
        self.audio_format = "pcmu" if codec == "PCMU" else "pcma"
        super().__init__()
        self.call_control_id = call_control_id or "v3:" + secrets.token_urlsafe(24)
        self.call_sid = self.call_control_id
        self.stream_id = secrets.token_hex(8) + "-" + secrets.token_hex(4)
        self.caller, self.called = caller, called
        self.reorder = reorder
        self.sequence = 0
        self.chunks = 0
        self._held: str | None = None  # reorder: the frame waiting for its successor

    def _event(self, event: str, body: Mapping[str, object]) -> str:
        self.sequence += 1
        message = {"event": event, "sequence_number": str(self.sequence), **body}
        return json.dumps({**message, "stream_id": self.stream_id}, separators=(",", ":"))

    def opening(self, parameters: Mapping[str, str]) -> list[Frame]:
        state = base64.b64encode(json.dumps(dict(parameters)).encode()).decode()
        start = {
            "user_id": "3e6f995f-85f7-4705-9741-53b116d28237",
            "call_control_id": self.call_control_id,
            "call_session_id": secrets.token_hex(16),
            "from": self.caller,
            "to": self.called,
            "client_state": state,
            "media_format": {"encoding": self.codec, "sample_rate": 8000, "channels": 1},
        }
        connected = json.dumps({"event": "connected", "version": "1.0.0"})
        return [connected, self._event("start", {"start": start})]

    def media(self, ulaw: bytes) -> Frame | list[Frame]:
        self.chunks += 1
        media = {
            "track": "inbound",
            "chunk": str(self.chunks),
            "timestamp": str((self.chunks - 1) * 20),
            "payload": base64.b64encode(self.to_wire(ulaw)).decode(),
        }
        frame = self._event("media", {"media": media})
        if not self.reorder:
            return frame
        if self._held is None:
            self._held = frame
            return []
        held, self._held = self._held, None
        return [frame, held]

    def dtmf(self, digit: str) -> Frame:
        return self._event(
            "dtmf", {"occurred_at": "2026-01-01T00:00:00Z", "dtmf": {"digit": digit}}
        )

    def hangup(self) -> Frame | None:
        stop = {"user_id": "3e6f995f-85f7-4705-9741-53b116d28237"}
        return self._event("stop", {"stop": {**stop, "call_control_id": self.call_control_id}})

    def mark_played(self, name: str) -> Frame | None:
        return self._event("mark", {"mark": {"name": name}})

    def parse(self, raw: str | bytes) -> list[BridgeMessage]:
        message = json_object(raw, "Telnyx")
        event = message.get("event")
        if event == "clear":
            return [BridgeClear()]
        if event not in ("media", "mark"):
            raise bad(f"unknown event {event!r}", raw)
        body = message.get(event)
        if not isinstance(body, dict):
            raise bad(f"{event} without a {event!r} object", raw)
        if event == "mark":
            if not isinstance(body.get("name"), str) or not body["name"]:
                raise bad("mark without a name", raw)
            return [BridgeMark(body["name"])]
        audio = base64_audio(body.get("payload"), "media", raw)
        if audio.startswith(b"RIFF"):
            raise bad("media payload is a WAV file, not raw RTP payload", raw)
        if not MIN_PAYLOAD_MS * 8 <= len(audio) <= MAX_PAYLOAD_MS * 8:
            raise bad(f"media of {len(audio)} bytes (Telnyx takes 20 ms to 30 s)", raw)
        return [BridgeMedia(self.from_wire(audio))]
