"""Telnyx media streaming (bidirectional, RTP mode), sans-I/O.

Inbound (Telnyx → bridge; snake_case): ``connected``, ``start`` (``stream_id`` at the top level,
``call_control_id``, ``from``/``to``, ``client_state`` base64, ``media_format``), ``media``
(``media.chunk`` numbers, ``track``), ``dtmf``, ``mark``, ``error``, ``stop``. Outbound: ``media``
(base64 payload in the stream's codec), ``mark``, ``clear`` — no stream id needed.

Telnyx does not promise that media arrive in order: chunks are reordered by their number, and
a chunk still missing once :data:`REORDER_WINDOW` later ones have arrived is concealed with
silence of the same length (the call goes on; a stall would delay every later frame).

Audio: PCMU or PCMA at 8 kHz (``stream_bidirectional_codec``); other codecs are refused with a
clear error.
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson

from bridge.carriers.base import CarrierCodec, describe, field_object, field_text, json_frame
from bridge.errors import CarrierProtocolError, CarrierStartRefused
from bridge.session import events as ev

ENCODINGS = {"PCMU": "pcmu", "audio/x-mulaw": "pcmu", "PCMA": "pcma", "audio/x-alaw": "pcma"}
SILENCE = {"pcmu": 0xFF, "pcma": 0xD5}
REORDER_WINDOW = 3
"""Chunks that may arrive after a missing one before it is given up and concealed (60 ms)."""
MAX_GAP = 50
"""A jump of more chunks than this (1 s) is a discontinuity: start counting again from there."""


class TelnyxCodec(CarrierCodec):
    """Parser and builder for one Telnyx media stream."""

    carrier = "telnyx"

    def __init__(self) -> None:
        self.stream_id: str | None = None
        self.call_control_id: str | None = None
        self.encoding = "pcmu"
        self.started = False
        self.stopped = False
        self._next_chunk: int | None = None
        self._pending: dict[int, bytes] = {}
        self.late_chunks = 0
        self.concealed_chunks = 0

    # -- inbound -----------------------------------------------------------------------------

    def parse(self, data: str | bytes) -> ev.CarrierEvent | None:
        message = json_frame(data)
        kind = message.get("event")
        try:
            if kind == "media":
                return self._media(message)
            if kind == "start":
                return self._start(message)
            if kind == "mark":
                self._require_started("mark")
                return ev.PlaybackMark(field_text(field_object(message, "mark"), "name"))
            if kind == "dtmf":
                self._require_started("dtmf")
                return ev.CallerDtmf(field_text(field_object(message, "dtmf"), "digit"))
            if kind == "stop":
                self.stopped = True
                return ev.CallerHangup("Telnyx stopped the stream")
            if kind == "error":
                payload = message.get("payload")
                detail = payload if isinstance(payload, dict) else {}
                raise CarrierProtocolError(
                    f"Telnyx error {detail.get('code')}: {detail.get('title')} "
                    f"({detail.get('detail')})"
                )
            if kind == "connected":
                return None
        except (TypeError, ValueError, binascii.Error) as exc:
            raise CarrierProtocolError(f"malformed {kind}: {exc}") from None
        raise CarrierProtocolError(f"unknown event {describe(kind)}")

    def _start(self, message: dict[str, Any]) -> ev.CallStarted:
        if self.started:
            raise CarrierProtocolError("a second start on the same stream")
        start = field_object(message, "start")
        stream_id = field_text(message, "stream_id")
        fmt = start.get("media_format") or {}
        if not isinstance(fmt, dict):
            raise CarrierProtocolError("start.media_format is not an object")
        raw_encoding = str(fmt.get("encoding") or "PCMU")
        encoding = ENCODINGS.get(raw_encoding)
        if encoding is None:
            raise CarrierStartRefused(
                f"Telnyx codec {raw_encoding} is not supported: stream PCMU or PCMA "
                "(stream_bidirectional_codec)"
            )
        rate = int(fmt.get("sample_rate") or 8000)
        if rate != 8000:
            raise CarrierStartRefused(f"Telnyx {raw_encoding} at {rate} Hz: only 8000 Hz")
        params = _client_state(start.get("client_state"))
        for key in ("from", "to", "call_session_id"):
            value = start.get(key)
            if isinstance(value, str) and value:
                params.setdefault(key, value)
        self.stream_id = stream_id
        self.call_control_id = start.get("call_control_id") or None
        self.encoding = encoding
        self.started = True
        return ev.CallStarted(
            call_sid=self.call_control_id or "",
            stream_sid=stream_id,
            custom_parameters=params,
            encoding=encoding,
            sample_rate=rate,
        )

    def _media(self, message: dict[str, Any]) -> ev.CallerAudio | None:
        self._require_started("media")
        media = field_object(message, "media")
        if media.get("track", "inbound") != "inbound":
            return None
        payload = binascii.a2b_base64(field_text(media, "payload"), strict_mode=True)
        chunk = media.get("chunk")
        if chunk is None:  # unnumbered: nothing to reorder
            return ev.CallerAudio(payload) if payload else None
        return self._reorder(int(chunk), payload)

    def _reorder(self, chunk: int, payload: bytes) -> ev.CallerAudio | None:
        if self._next_chunk is None:
            self._next_chunk = chunk
        if chunk - self._next_chunk > MAX_GAP:  # not a gap to conceal: a new count
            flushed = b"".join(self._pending.pop(k) for k in sorted(self._pending))
            self._next_chunk = chunk + 1
            audio = flushed + payload
            return ev.CallerAudio(audio) if audio else None
        if chunk < self._next_chunk or chunk in self._pending:
            self.late_chunks += 1  # too late (already concealed) or a duplicate
            return None
        self._pending[chunk] = payload
        out: list[bytes] = []
        while self._pending:
            if self._next_chunk in self._pending:
                out.append(self._pending.pop(self._next_chunk))
            elif max(self._pending) - self._next_chunk >= REORDER_WINDOW:
                size = len(self._pending[min(self._pending)])
                out.append(bytes([SILENCE[self.encoding]]) * size)
                self.concealed_chunks += 1
            else:
                break
            self._next_chunk += 1
        audio = b"".join(out)
        return ev.CallerAudio(audio) if audio else None

    def _require_started(self, what: str) -> None:
        if not self.started:
            raise CarrierProtocolError(f"{what} before start")

    # -- outbound ----------------------------------------------------------------------------

    def media(self, payload: bytes) -> str:
        b64 = binascii.b2a_base64(payload, newline=False).decode("ascii")
        return '{"event":"media","media":{"payload":"' + b64 + '"}}'

    def mark(self, name: str) -> str:
        return orjson.dumps({"event": "mark", "mark": {"name": name}}).decode()

    def clear(self) -> str:
        return '{"event":"clear"}'


def _client_state(raw: object) -> dict[str, str]:
    """Call parameters from ``client_state``: base64 of a JSON object, or of plain text."""
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        text = binascii.a2b_base64(raw).decode()
    except (binascii.Error, UnicodeDecodeError):
        return {"client_state": raw}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"client_state": text}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {"client_state": text}
