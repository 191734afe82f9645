"""Asterisk ``chan_websocket`` from Asterisk's side (digest §5.6), for the simulated caller.

Written from Asterisk's documentation and ``chan_websocket.c``, not from the bridge's codec.
Asterisk → bridge: ``MEDIA_START`` first (plain text or JSON, a constructor option; JSON
carries the caller's parameters as ``channel_variables``, plain text cannot, so they go in the
URL), then BINARY caller frames, ``DTMF_END``, ``MEDIA_MARK_PROCESSED`` when playback reaches a
mark, ``MEDIA_XOFF``/``MEDIA_XON``. The caller hanging up just closes the socket.

Bridge → Asterisk is checked as Asterisk would take it, and everything it would drop, ignore or
die of is a violation: a binary message that is not a whole number of ``optimal_frame_size``
frames (Asterisk drops the remainder), over 65,500 bytes (Asterisk closes the socket), a TEXT
message over 128 bytes (ignored), a command in the other control format, an unknown command.
``FLUSH_MEDIA`` clears playback and, like Asterisk, answers none of the flushed marks;
``HANGUP`` is the bridge hanging up.

**Flow control.** Asterisk queues at most ~1000 frames; it says ``MEDIA_XOFF`` when its queue
reaches ``xoff_frames`` (900) and ``MEDIA_XON`` when it falls below ``xon_frames`` (800),
both configurable so a test can use small levels. The caller's playback buffer is that queue
(:meth:`AsteriskWire.queue_changed` gets its length after every message and every 20 ms while
it plays). A media frame that arrives while XOFF is in force is a violation, except the frames
that were already on their way when the XOFF left: a bridge writes a whole sentence at once,
and what it wrote before it could read the XOFF is, as Asterisk's documentation puts it,
"processed in its entirety". Those may arrive during the first ``xoff_grace_ms`` of playback
after the XOFF (counted in :attr:`AsteriskWire.in_flight_frames`); a frame after that was sent
after the bridge could have read the XOFF. The grace is measured on the playback clock (how
much of the queue has played since the XOFF), so the wire stays clock-free. A frame that
arrives with ``max_frames`` queued is one Asterisk drops: a violation too, XOFF or not.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping

from bridge.simulate.carriers.base import (
    BridgeClear,
    BridgeHangup,
    BridgeMark,
    BridgeMedia,
    BridgeMessage,
    CallerWire,
    Frame,
    bad,
)

__all__ = ["AsteriskWire"]

FORMATS = {
    "ulaw": "pcmu",
    "alaw": "pcma",
    "slin": "pcm16/8000",
    "slin16": "pcm16/16000",
    "slin24": "pcm16/24000",
}
"""The Asterisk formats this simulator speaks, as the caller's audio formats."""
MAX_MESSAGE_BYTES = 65_500
MAX_TEXT_BYTES = 128
UNSIMULATED = frozenset(
    {
        "START_MEDIA_BUFFERING", "STOP_MEDIA_BUFFERING", "PAUSE_MEDIA", "CONTINUE_MEDIA",
        "GET_STATUS", "REPORT_QUEUE_DRAINED", "SET_MEDIA_DIRECTION",
    }
)  # fmt: skip
"""Real commands this simulator does not model (a bridge that sends one needs a new test)."""


class AsteriskWire(CallerWire):
    carrier = "asterisk"
    subprotocols = ("media",)

    def __init__(
        self,
        *,
        control: str = "plain",
        format: str = "ulaw",
        ptime: int = 20,
        optimal_frame_size: int | None = None,
        connection: str = "callbridge",
        channel_variables: Mapping[str, str] | None = None,
        xoff_frames: int = 900,
        xon_frames: int = 800,
        max_frames: int = 1000,
        xoff_grace_ms: float = 250.0,
    ) -> None:
        if control not in ("plain", "json"):
            raise ValueError(f"control format is 'plain' or 'json', not {control!r}")
        if format not in FORMATS:
            raise ValueError(f"the simulated channel speaks {', '.join(FORMATS)}, not {format!r}")
        if not 0 < xon_frames <= xoff_frames <= max_frames:
            raise ValueError("flow levels must satisfy 0 < xon_frames <= xoff_frames <= max_frames")
        self.control = control
        self.format = format
        self.audio_format = FORMATS[format]
        super().__init__()
        self.ptime = ptime
        self.optimal_frame_size = optimal_frame_size or self.bytes_per_ms * ptime
        self.connection_id = str(uuid.uuid4())
        self.channel = f"WebSocket/{connection}/0x{secrets.token_hex(6)}"
        self.channel_id = f"sim-{secrets.randbelow(10**10)}.{secrets.randbelow(1000)}"
        self.call_sid = self.channel_id  # the bridge journals channel_id as call_sid
        self.channel_variables = dict(channel_variables or {})
        self.xoff_frames, self.xon_frames, self.max_frames = xoff_frames, xon_frames, max_frames
        self.xoff_grace_ms = xoff_grace_ms
        self.xoff = False
        """MEDIA_XOFF said and no MEDIA_XON since."""
        self.flow_log: list[tuple[str, int, float]] = []
        """(event, media frames received so far, queued ms) for each XOFF and XON sent."""
        self.media_frames = 0
        self.media_bytes = 0  # on the wire, in the channel's format
        self.in_flight_frames = 0  # arrived during XOFF, within the grace
        self.in_flight_ms = 0.0  # the latest (in playback since the XOFF) one of them came
        self._queued_ms = 0.0  # as of the last queue_changed
        self._added_ms = 0.0  # media accepted since the last queue_changed
        self._xoff_queued_ms = 0.0  # queue when the XOFF left
        self._xoff_added_ms = 0.0  # media accepted since the XOFF
        self._played_since_xoff_ms = 0.0

    # -- Asterisk → bridge -------------------------------------------------------------------

    def event(self, name: str, **fields: str | int | bool) -> str:
        """One event in this channel's control format (``MEDIA_XOFF``, ``STATUS``, ``ERROR``…)."""
        if self.control == "json":
            body = {"event": name, "channel_id": self.channel_id, **fields}
            return json.dumps(body, separators=(",", ":"))
        if name in ("MEDIA_MARK_PROCESSED", "MEDIA_BUFFERING_COMPLETED"):
            correlation = fields.get("correlation_id", "")
            return f"{name} {correlation}" if correlation else name
        if name in ("MEDIA_XOFF", "MEDIA_XON", "QUEUE_DRAINED"):
            return name
        text = fields.pop("error_text", None) if name == "ERROR" else None
        pairs = [f"{key}:{_plain(value)}" for key, value in fields.items()]
        channel = [f"channel_id:{self.channel_id}"]
        # as chan_websocket.c prints them: DTMF_END digit:5 channel_id:…, STATUS channel_id:… …
        parts = [name, *pairs, *channel] if name == "DTMF_END" else [name, *channel, *pairs]
        if text is not None:
            parts.append(f"error_text:{text}")
        return " ".join(parts)

    def opening(self, parameters: Mapping[str, str]) -> list[Frame]:
        start: dict[str, str | int] = {
            "connection_id": self.connection_id,
            "channel": self.channel,
            "channel_id": self.channel_id,
            "format": self.format,
            "optimal_frame_size": self.optimal_frame_size,
            "ptime": self.ptime,
        }
        if self.control == "plain":
            if parameters:
                raise ValueError(
                    "a plain-text MEDIA_START carries no channel variables: "
                    "put the parameters in the URL (?agent=…)"
                )
            fields = " ".join(f"{key}:{value}" for key, value in start.items())
            return [f"MEDIA_START {fields}"]
        variables = {
            "MEDIA_WEBSOCKET_CONNECTION_ID": self.connection_id,
            "MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE": str(self.optimal_frame_size),
            **self.channel_variables,
            **parameters,
        }
        body = {"event": "MEDIA_START", **start, "channel_variables": variables}
        return [json.dumps(body, separators=(",", ":"))]

    def media(self, ulaw: bytes) -> Frame:
        return self.to_wire(ulaw)

    def dtmf(self, digit: str) -> Frame:
        return self.event("DTMF_END", digit=digit)

    def hangup(self) -> Frame | None:
        return None  # no hang-up event: Asterisk closes the socket

    def mark_played(self, name: str) -> Frame | None:
        return self.event("MEDIA_MARK_PROCESSED", correlation_id=name)

    def cleared(self, flushed: list[str]) -> list[Frame]:
        return []  # FLUSH_MEDIA drops the queued marks with the audio: nothing answers them

    def queue_changed(self, queued_ms: float) -> list[Frame]:
        if self.xoff:
            self._played_since_xoff_ms = self._xoff_queued_ms + self._xoff_added_ms - queued_ms
        self._queued_ms, self._added_ms = queued_ms, 0.0
        frames = queued_ms / self.ptime
        if self.xoff and frames < self.xon_frames:
            self.xoff = False
            self.flow_log.append(("MEDIA_XON", self.media_frames, queued_ms))
            return [self.event("MEDIA_XON")]
        if not self.xoff and frames >= self.xoff_frames:
            self.xoff = True
            self._xoff_queued_ms, self._xoff_added_ms = queued_ms, 0.0
            self._played_since_xoff_ms = 0.0
            self.flow_log.append(("MEDIA_XOFF", self.media_frames, queued_ms))
            return [self.event("MEDIA_XOFF")]
        return []

    # -- bridge → Asterisk -------------------------------------------------------------------

    def parse(self, raw: str | bytes) -> list[BridgeMessage]:
        if isinstance(raw, bytes):
            return [self._media(raw)]
        if len(raw.encode()) > MAX_TEXT_BYTES:
            raise bad(f"TEXT message over {MAX_TEXT_BYTES} bytes (Asterisk ignores it)", raw)
        text = raw.strip()
        command, data = self._command(text, raw)
        if command == "MARK_MEDIA":
            return [BridgeMark(data)]
        if command == "FLUSH_MEDIA":
            return [BridgeClear()]
        if command == "HANGUP":
            return [BridgeHangup("HANGUP")]
        if command == "ANSWER":
            return []  # the channel answered itself when the socket connected
        if command in UNSIMULATED:
            raise bad(f"{command} is a real command this simulator does not model", raw)
        raise bad("unknown command (Asterisk logs a warning and ignores it)", raw)

    def _command(self, text: str, raw: str) -> tuple[str, str]:
        """(command, correlation id) of one TEXT message, in this channel's format only."""
        if self.control == "plain":
            if text.startswith("{"):
                raise bad("JSON command on a plain-text channel (Asterisk: unknown command)", raw)
            command, _, data = text.partition(" ")
            return command, data.strip()
        try:
            message = json.loads(text)
        except ValueError:
            raise bad("not JSON on a JSON channel (Asterisk answers ERROR)", raw) from None
        if not isinstance(message, dict) or not isinstance(message.get("command"), str):
            raise bad("JSON command without a 'command' string", raw)
        correlation = message.get("correlation_id", "")
        if not isinstance(correlation, str):
            raise bad("correlation_id is not a string", raw)
        return message["command"], correlation

    def _media(self, raw: bytes) -> BridgeMedia:
        if not raw:
            raise bad("empty binary message", raw)
        if len(raw) > MAX_MESSAGE_BYTES:
            raise bad(f"over {MAX_MESSAGE_BYTES} bytes: Asterisk closes the socket", raw)
        extra = len(raw) % self.optimal_frame_size
        if extra:
            raise bad(
                f"not whole {self.optimal_frame_size}-byte frames: Asterisk drops {extra} bytes",
                raw,
            )
        ms = len(raw) / self.bytes_per_ms
        if (self._queued_ms + self._added_ms) / self.ptime >= self.max_frames:
            raise bad(f"queue full ({self.max_frames} frames): Asterisk drops this", raw)
        if self.xoff:
            if self._played_since_xoff_ms > self.xoff_grace_ms:
                late = round(self._played_since_xoff_ms)
                raise bad(f"media {late} ms after MEDIA_XOFF (hold it until MEDIA_XON)", raw)
            self.in_flight_frames += 1
            self.in_flight_ms = max(self.in_flight_ms, self._played_since_xoff_ms)
            self._xoff_added_ms += ms
        self._added_ms += ms
        self.media_frames += 1
        self.media_bytes += len(raw)
        return BridgeMedia(self.from_wire(raw))


def _plain(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
