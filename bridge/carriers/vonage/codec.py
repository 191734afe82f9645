"""Vonage Voice API websockets (NCCO ``connect`` to a ``websocket`` endpoint), sans-I/O.

Inbound (Vonage → bridge): the first frame is text, ``websocket:connected``, with the stream's
``content-type`` (``audio/l16;rate=8000|16000|24000``) and the NCCO endpoint's ``headers``
flattened at the top level. Then binary frames of 16-bit little-endian PCM, 20 ms each, and
text events between them: ``websocket:dtmf`` (``digit`` and ``duration`` at the top level; the
nested ``{"dtmf": {"digit": …}}`` shape several integrations also handle is accepted),
``websocket:notify`` (the payload of a ``notify`` we sent, back once the audio before it has
played: our mark), ``websocket:cleared`` (the answer to ``clear``) and ``websocket:media:update``
(reported by integrations, not in Vonage's docs; carries nothing for us). Anything else is a
:class:`~bridge.errors.CarrierProtocolError`; the runtime journals it and the call goes on.

Outbound: binary frames of exactly 20 ms (Vonage plays nothing else; the session pads the last
chunk of a turn), ``{"action":"notify","payload":{"mark":"<name>"}}`` after each one and
``{"action":"clear"}``. Vonage has no in-band hang-up: closing the socket ends the NCCO
``connect`` action (and the call, when it is the NCCO's last action).

Call parameters are the headers: strings as they are, other JSON values (numbers, booleans,
objects) as their JSON text. ``uuid`` — the NCCO should put the call's uuid there — becomes the
call sid.

Caller frames that are not exactly 20 ms are accepted (nothing downstream needs a 20 ms grid)
and counted in ``off_size_frames``; a frame that is not whole 16-bit samples is refused.
"""

from __future__ import annotations

from typing import Any

import orjson

from bridge.carriers.base import DTMF_KEYS, CarrierCodec, field_object, json_frame
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

RATES = {"8000": 8000, "16000": 16000, "24000": 24000}
IGNORED = frozenset({"websocket:cleared", "websocket:media:update"})
"""Events that carry nothing for the session (``websocket:cleared``: our clear took effect)."""
_NOT_PARAMETERS = frozenset({"event", "content-type"})


def stream_format(content_type: object) -> int:
    """The sample rate a ``content-type`` such as ``audio/l16;rate=16000`` asks for."""
    if not isinstance(content_type, str):
        raise CarrierProtocolError("websocket:connected has no content-type string")
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() == "audio/l16":
        for part in rest.split(";"):
            key, _, value = part.partition("=")
            if key.strip().lower() == "rate" and value.strip() in RATES:
                return RATES[value.strip()]
    raise CarrierProtocolError(
        f"Vonage content-type {content_type[:80]!r} is not supported: set the NCCO websocket "
        "endpoint's content-type to audio/l16;rate=8000, 16000 or 24000"
    )


class VonageCodec(CarrierCodec):
    """Parser and builder for one Vonage websocket call leg."""

    carrier = "vonage"
    max_marks = 500
    """10 s of 20 ms frames unplayed at most: Vonage buffers about 1024 messages, and every
    frame travels with its ``notify`` (two messages)."""

    def __init__(self) -> None:
        self.started = False
        self.rate = 16000
        self.frame_bytes = 640
        self.uuid: str | None = None
        self.off_size_frames = 0

    # -- inbound -----------------------------------------------------------------------------

    def parse(self, data: str | bytes) -> ev.CarrierEvent | None:
        if isinstance(data, bytes):
            return self._audio(data)
        message = json_frame(data)
        kind = message.get("event")
        if kind == "websocket:connected":
            return self._start(message)
        if not self.started:
            raise CarrierProtocolError(f"event {_shown(kind)} before websocket:connected")
        if kind == "websocket:notify":
            mark = field_object(message, "payload").get("mark")
            if not isinstance(mark, str):
                raise CarrierProtocolError("websocket:notify payload carries no mark of ours")
            return ev.PlaybackMark(mark)
        if kind == "websocket:dtmf":
            return ev.CallerDtmf(_digit(message))
        if isinstance(kind, str) and kind in IGNORED:
            return None
        raise CarrierProtocolError(f"unknown Vonage event {_shown(kind)}")

    def _start(self, message: dict[str, Any]) -> ev.CallStarted:
        if self.started:
            raise CarrierProtocolError("a second websocket:connected on the same socket")
        rate = stream_format(message.get("content-type"))
        params = {
            key: _text(key, value)
            for key, value in message.items()
            if key not in _NOT_PARAMETERS and value is not None
        }
        uuid = message.get("uuid")
        self.uuid = uuid if isinstance(uuid, str) and uuid else None
        self.rate = rate
        self.frame_bytes = rate // 1000 * 2 * self.frame_ms
        self.started = True
        return ev.CallStarted(
            call_sid=self.uuid or "",
            stream_sid=self.uuid or "",
            custom_parameters=params,
            encoding=f"pcm16/{rate}",
            sample_rate=rate,
        )

    def _audio(self, data: bytes) -> ev.CallerAudio | None:
        if not self.started:
            raise CarrierProtocolError("audio before websocket:connected")
        if len(data) % 2:
            raise CarrierProtocolError(f"audio frame of {len(data)} bytes is not 16-bit samples")
        if len(data) != self.frame_bytes:
            self.off_size_frames += 1
        return ev.CallerAudio(data) if data else None

    # -- outbound ----------------------------------------------------------------------------

    def media(self, payload: bytes) -> bytes:
        """One binary frame: exactly 20 ms of 16-bit PCM at the stream's rate."""
        self._require_outbound()
        if len(payload) != self.frame_bytes:
            raise CarrierProtocolError(
                f"Vonage plays 20 ms frames of {self.frame_bytes} bytes, not {len(payload)}",
                who="local",
            )
        return payload

    def mark(self, name: str) -> str:
        """``notify``: Vonage sends its payload back once the audio before it has played."""
        self._require_outbound()
        return orjson.dumps({"action": "notify", "payload": {"mark": name}}).decode()

    def clear(self) -> str:
        """Drop the audio Vonage has buffered (answered by ``websocket:cleared``)."""
        self._require_outbound()
        return '{"action":"clear"}'

    def _require_outbound(self) -> None:
        if not self.started:
            raise CarrierProtocolError("cannot send before websocket:connected", who="local")


def _shown(value: object) -> str:
    """A peer's value for an error message: short, and never the repr of a deep structure."""
    return repr(value[:40]) if isinstance(value, str) else f"<{type(value).__name__}>"


def _text(key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson writes 254 levels of nesting, reads 1024
        raise CarrierProtocolError(f"header {key[:40]!r} is nested too deeply") from None


def _digit(message: dict[str, Any]) -> str:
    digit = message.get("digit")
    nested = message.get("dtmf")
    if digit is None and isinstance(nested, dict):
        digit = nested.get("digit")
    if not isinstance(digit, str) or digit not in DTMF_KEYS:
        raise CarrierProtocolError(f"websocket:dtmf digit {_shown(digit)} is not a keypad key")
    return digit
