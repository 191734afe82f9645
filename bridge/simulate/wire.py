"""Twilio Media Streams as the *carrier* speaks it (sans-I/O): encoder and strict bridge parser.

:class:`StreamEncoder` produces the Twilio → bridge frames of one stream with Twilio's exact
shapes (digest §1.2: numbers as strings, one ``sequenceNumber`` counter from ``start`` = "1"
across every event, ``chunk``/``timestamp`` per media frame). :func:`parse_bridge_message` reads
bridge → Twilio frames (§1.3) and raises :class:`~bridge.errors.CarrierProtocolError` for
anything real Twilio would ignore or mis-play, so tests can assert a bridge never sends it.

Deliberately independent of ``bridge.carriers.twilio``: a fake peer that shared the codec under
test would agree with its bugs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping

from bridge.simulate.carriers.base import (
    BridgeClear,
    BridgeMark,
    BridgeMedia,
    BridgeMessage,
    bad,
    base64_audio,
    json_object,
)

__all__ = [
    "DTMF_DIGITS", "FRAME_BYTES", "BridgeClear", "BridgeMark", "BridgeMedia", "BridgeMessage",
    "StreamEncoder", "new_sid", "parse_bridge_message", "twilio_signature",
]  # fmt: skip

FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
FRAME_MS = 20
DTMF_DIGITS = frozenset("0123456789*#")


def new_sid(prefix: str) -> str:
    """A fake but well-formed Twilio SID: ``prefix`` + 32 random hex digits."""
    return prefix + secrets.token_hex(16)


def twilio_signature(url: str, auth_token: str) -> str:
    """``X-Twilio-Signature`` of a request without form parameters, like the upgrade (§1.8)."""
    digest = hmac.new(auth_token.encode(), url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _dumps(msg: Mapping[str, object]) -> str:
    return json.dumps(msg, separators=(",", ":"))


class StreamEncoder:
    """Builds the JSON text frames Twilio sends for one stream, numbering them as Twilio does."""

    def __init__(self, *, stream_sid: str, account_sid: str, call_sid: str) -> None:
        self.stream_sid = stream_sid
        self.account_sid = account_sid
        self.call_sid = call_sid
        self.sequence = 0  # of the last frame built; `start` is "1"
        self.chunks = 0  # media frames built

    def _event(self, event: str, body: Mapping[str, object]) -> str:
        self.sequence += 1
        msg = {"event": event, "sequenceNumber": str(self.sequence), **body}
        return _dumps({**msg, "streamSid": self.stream_sid})

    def connected(self) -> str:
        return _dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, custom_parameters: Mapping[str, str]) -> str:
        start = {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": dict(custom_parameters),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        return self._event("start", {"start": start})

    def media(self, frame: bytes) -> str:
        """One inbound frame; ``timestamp`` is media time (ms since stream start)."""
        self.chunks += 1
        media = {
            "track": "inbound",
            "chunk": str(self.chunks),
            "timestamp": str((self.chunks - 1) * FRAME_MS),
            "payload": base64.b64encode(frame).decode("ascii"),
        }
        return self._event("media", {"media": media})

    def dtmf(self, digit: str) -> str:
        if digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        return self._event("dtmf", {"dtmf": {"track": "inbound_track", "digit": digit}})

    def mark(self, name: str) -> str:
        return self._event("mark", {"mark": {"name": name}})

    def stop(self) -> str:
        return self._event(
            "stop", {"stop": {"accountSid": self.account_sid, "callSid": self.call_sid}}
        )


def parse_bridge_message(raw: str | bytes, stream_sid: str) -> BridgeMessage:
    """Parse one bridge → Twilio frame strictly, or raise :class:`CarrierProtocolError`."""
    msg = json_object(raw, "Twilio")
    event = msg.get("event")
    if event not in ("media", "mark", "clear"):
        raise bad(f"unknown event {event!r}", raw)
    if "streamSid" not in msg:
        raise bad(f"{event} without streamSid", raw)
    if msg["streamSid"] != stream_sid:
        raise bad(f"{event} for the wrong streamSid {msg['streamSid']!r}", raw)
    if event == "clear":
        return BridgeClear()
    body = msg.get(event)
    if not isinstance(body, dict):
        raise bad(f"{event} without a {event!r} object", raw)
    if event == "mark":
        if not isinstance(body.get("name"), str):
            raise bad("mark without a string name", raw)
        return BridgeMark(body["name"])
    data = base64_audio(body.get("payload"), "media", raw)
    if data.startswith(b"RIFF"):
        raise bad("media payload is a WAV file (RIFF header), not raw μ-law", raw)
    return BridgeMedia(data)
