"""Plivo Audio Streams (bidirectional ``<Stream>``), sans-I/O.

Inbound (Plivo → bridge; camelCase, ``sequenceNumber`` a JSON number): ``start`` (``callId``,
``streamId``, ``accountId``, ``tracks``, ``mediaFormat``; ``extra_headers`` at the top level),
``media`` (``track``, ``chunk``, ``timestamp``, base64 ``payload``), ``dtmf``, ``playedStream``
(a checkpoint was reached; some support pages call it ``played``), ``clearedAudio``. There is no
``stop``: the socket just closes, which the runtime already treats as the caller hanging up.

Outbound: ``playAudio`` (``contentType`` and ``sampleRate`` of the stream's own format — Plivo
asks that the codec never changes mid-stream), ``checkpoint`` and ``clearAudio`` (both with the
``streamId``). Plivo answers a checkpoint with ``playedStream`` only once the audio before it has
*played*; after ``clearAudio`` it answers ``clearedAudio`` and the dropped checkpoints are never
answered (the session's ledger already forgot them when it flushed).

Audio: ``audio/x-mulaw`` at 8 kHz, or ``audio/x-l16`` (16-bit little-endian PCM) at 8 or 16 kHz,
as chosen by the ``<Stream contentType>`` attribute. 16-bit payloads are kept sample-aligned: an
odd byte at the end of one ``media`` is held and put in front of the next, so no split of the
caller's audio ever shifts the samples.

Ending the call from our side needs Plivo's REST API (:mod:`bridge.carriers.plivo.control`):
there is no in-band hang-up, and with ``keepCallAlive="true"`` closing the socket only moves the
call on to the next XML element.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from bridge.carriers.base import (
    DTMF_KEYS,
    CarrierCodec,
    SampleAligner,
    audio_format,
    caller_audio,
    check_sequence_number,
    field_object,
    field_text,
    json_frame,
)
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

__all__ = ["CONTENT_TYPES", "DTMF_KEYS", "PlivoCodec", "extra_headers"]

CONTENT_TYPES = {"audio/x-mulaw": "pcmu", "audio/x-l16": "pcm16"}
"""Plivo's ``contentType`` → the bridge's encoding name."""
RATES = {"pcmu": (8000,), "pcm16": (8000, 16000)}
"""Sample rates Plivo streams in each encoding."""


class PlivoCodec(CarrierCodec):
    """Parser and builder for one Plivo audio stream."""

    carrier = "plivo"

    def __init__(self) -> None:
        self.stream_id: str | None = None
        self.call_id: str | None = None
        self.account_id: str | None = None
        self.encoding = "pcmu"  # the bridge's format string, once started
        self.started = False
        self._aligner = SampleAligner()  # 16-bit PCM: whole samples to the session
        self._play_prefix = ""
        self._checkpoint_prefix = ""
        self._clear = ""

    # -- inbound -----------------------------------------------------------------------------

    def parse(self, data: str | bytes) -> ev.CarrierEvent | None:
        """Parse one websocket frame from Plivo."""
        message = json_frame(data)
        kind = message.get("event")
        if kind == "media":
            return self._media(message)
        if kind in ("playedStream", "played"):
            self._check(message, kind)
            return ev.PlaybackMark(field_text(message, "name"))
        if kind == "clearedAudio":
            self._check(message, kind)
            return None  # the session already flushed its ledger when it asked for the clear
        if kind == "dtmf":
            self._check(message, kind)
            digit = field_text(field_object(message, "dtmf"), "digit")
            if len(digit) != 1 or digit not in DTMF_KEYS:
                raise CarrierProtocolError(f"dtmf digit {digit!r} is not a keypad key")
            return ev.CallerDtmf(digit)
        if kind == "start":
            return self._start(message)
        raise CarrierProtocolError(f"unknown event {kind!r}")

    def _start(self, message: dict[str, Any]) -> ev.CallStarted:
        if self.started:
            raise CarrierProtocolError("a second start on the same stream")
        check_sequence_number(message, "sequenceNumber")
        start = field_object(message, "start")
        stream_id = field_text(start, "streamId")
        call_id = field_text(start, "callId")
        fmt = field_object(start, "mediaFormat")
        content_type = fmt.get("encoding")
        rate = fmt.get("sampleRate")
        encoding = CONTENT_TYPES.get(content_type) if isinstance(content_type, str) else None
        if (
            encoding is None
            or not isinstance(rate, int)
            or isinstance(rate, bool)
            or rate not in RATES[encoding]
        ):
            raise CarrierProtocolError(
                f"Plivo audio {content_type!r} at {rate!r} Hz is not supported: set the "
                '<Stream contentType> to "audio/x-mulaw;rate=8000", "audio/x-l16;rate=8000" '
                'or "audio/x-l16;rate=16000"'
            )
        params = extra_headers(message.get("extra_headers"))
        account = start.get("accountId")
        self.account_id = account if isinstance(account, str) else None
        self.stream_id = stream_id
        self.call_id = call_id
        self.encoding = audio_format(encoding, rate)
        self.started = True
        sid = orjson.dumps(stream_id).decode()
        self._play_prefix = (
            '{"event":"playAudio","media":{"contentType":'
            + orjson.dumps(content_type).decode()
            + ',"sampleRate":'
            + str(rate)
            + ',"payload":"'
        )
        self._checkpoint_prefix = '{"event":"checkpoint","streamId":' + sid + ',"name":'
        self._clear = '{"event":"clearAudio","streamId":' + sid + "}"
        return ev.CallStarted(
            call_sid=call_id,
            stream_sid=stream_id,
            custom_parameters=params,
            encoding=self.encoding,
            sample_rate=rate,
        )

    def _media(self, message: dict[str, Any]) -> ev.CallerAudio | None:
        self._check(message, "media")
        aligner = None if self.encoding == "pcmu" else self._aligner
        return caller_audio(field_object(message, "media"), aligner)

    def _check(self, message: Mapping[str, Any], what: str) -> None:
        """``what`` is allowed now and is about our stream."""
        if not self.started:
            raise CarrierProtocolError(f"{what} before start")
        check_sequence_number(message, "sequenceNumber")
        sid = message.get("streamId")
        if sid is not None and sid != self.stream_id:
            raise CarrierProtocolError(f"{what} for another stream {sid!r}")

    # -- outbound ----------------------------------------------------------------------------

    def media(self, payload: bytes) -> str:
        """One ``playAudio`` carrying ``payload`` in the stream's own format."""
        self._require_outbound()
        b64 = binascii.b2a_base64(payload, newline=False).decode("ascii")
        return self._play_prefix + b64 + '"}}'

    def mark(self, name: str) -> str:
        """A ``checkpoint``: Plivo sends ``playedStream`` once the audio before it has played."""
        self._require_outbound()
        return self._checkpoint_prefix + orjson.dumps(name).decode() + "}"

    def clear(self) -> str:
        """``clearAudio``: Plivo drops its unplayed audio and answers ``clearedAudio``."""
        self._require_outbound()
        return self._clear

    def _require_outbound(self) -> None:
        if not self.started:
            raise CarrierProtocolError("cannot send before the stream started", who="local")


def extra_headers(raw: object) -> dict[str, str]:
    """Call parameters from ``extra_headers``: ``"k=v;k2=v2"`` (``,`` separates too).

    The ``<Stream extraHeaders>`` attribute is written ``k=v,k2=v2`` and arrives joined with
    ``;``; Plivo allows only letters and digits in it, so both separators are safe. Pieces
    without ``=`` carry nothing and are skipped rather than failing the call.
    """
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        raise CarrierProtocolError("extra_headers must be a string of k=v pairs")
    params: dict[str, str] = {}
    for piece in raw.replace(",", ";").split(";"):
        key, sep, value = piece.partition("=")
        key = key.strip()
        if sep and key:
            params[key] = value.strip()
    return params
