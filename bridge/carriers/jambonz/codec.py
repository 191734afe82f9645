"""jambonz ``listen`` verb with streaming bidirectional audio, sans-I/O.

jambonz opens the websocket with the subprotocol ``audio.jambonz.org`` (the route selects it).
Inbound: one text frame first — the call's attributes (``callSid``, ``from``, ``to``,
``direction``, ``accountSid``…) plus ``sampleRate`` and ``mixType``, with the verb's ``metadata``
merged in at the top level (the feature server ``Object.assign``\\ s it; a nested ``metadata``
object is read as well) — then binary frames of 16-bit little-endian PCM of any size, and text
events: ``{"event":"dtmf","dtmf":"2","duration":"1600"}`` (with ``passDtmf``) and mark answers
``{"type":"mark","data":{"name":…,"event":"playout"|"cleared"}}``.

Outbound: binary PCM at the same rate (the verb's ``bidirectionalAudio.sampleRate`` must equal
its ``sampleRate``), ``{"type":"mark","data":{"name":…}}`` after every 20 ms chunk,
``{"type":"killAudio"}`` to clear and ``{"type":"disconnect"}`` to hang up (jambonz ends the
``listen`` and closes the socket).

What jambonz's ``mod_audio_fork`` does (read in its source) shapes three choices here:

* It tracks at most 30 marks and silently drops any beyond: ``max_marks = 30``, so the link
  holds later frames until answers make room (at most 600 ms of audio waits at jambonz).
* A mark waits inside the audio as the sample value 0xFFFF (-1): a real -1 sample played while
  marks are pending is taken for a mark (answered early, and cut out). :meth:`media` turns
  every -1 sample into -2, a one-step change nobody hears (``samples_nudged`` counts them).
* ``killAudio`` answers every pending mark with ``"event":"cleared"``. Those answers become
  :class:`~bridge.session.events.PlaybackMark` like played ones — as with Twilio's echo after
  ``clear``: the session ignores marks it flushed, and the link counts them settled.

Call parameters: top-level attributes with string, number or boolean values (numbers and
booleans as JSON text), then those of ``customerData`` and a nested ``metadata`` object;
``sampleRate``, ``mixType`` and object values (SIP ``headers``…) are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from bridge.carriers.base import DTMF_KEYS, CarrierCodec, field_object, field_text, json_frame
from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

SUBPROTOCOLS = ("audio.jambonz.org", "audio.drachtio.org")
"""What jambonz offers (``audio.drachtio.org`` is ``mod_audio_fork``'s name when unconfigured)."""
RATES = (8000, 16000, 24000)
MAX_MARKS = 30
"""``MAX_MARKS`` in jambonz's ``mod_audio_fork``: marks past this many pending are dropped."""
_MARK_PLACEHOLDER = b"\xff\xff"  # the sample -1, little-endian: jambonz's in-band mark
_NOT_PARAMETERS = frozenset({"sampleRate", "mixType"})


class JambonzCodec(CarrierCodec):
    """Parser and builder for one jambonz ``listen`` stream."""

    carrier = "jambonz"
    max_marks = MAX_MARKS

    def __init__(self) -> None:
        self.started = False
        self.call_sid: str | None = None
        self.rate = 8000
        self.samples_nudged = 0

    # -- inbound -----------------------------------------------------------------------------

    def parse(self, data: str | bytes) -> ev.CarrierEvent | None:
        if isinstance(data, bytes):
            return self._audio(data)
        message = json_frame(data)
        if not self.started:
            return self._start(message)
        kind = message.get("type")
        if kind == "mark":
            body = field_object(message, "data")
            name = field_text(body, "name")
            if body.get("event") not in ("playout", "cleared"):
                raise CarrierProtocolError(
                    f"mark {_shown(name)} with event {_shown(body.get('event'))}"
                )
            return ev.PlaybackMark(name)
        if kind is None and message.get("event") == "dtmf":
            digit = message.get("dtmf")
            if not isinstance(digit, str) or digit not in DTMF_KEYS:
                raise CarrierProtocolError(f"dtmf {_shown(digit)} is not a keypad key")
            return ev.CallerDtmf(digit)
        if kind is None and "sampleRate" in message:
            raise CarrierProtocolError("a second call-attributes frame on the same stream")
        what = (
            f"type {_shown(kind)}" if kind is not None else f"event {_shown(message.get('event'))}"
        )
        raise CarrierProtocolError(f"unknown jambonz message ({what})")

    def _start(self, message: dict[str, Any]) -> ev.CallStarted:
        if "sampleRate" not in message:
            raise CarrierProtocolError(
                "the first frame is not jambonz call attributes (no sampleRate)"
            )
        rate = _rate(message["sampleRate"])
        mix = message.get("mixType", "mono")
        if mix not in ("mono", "mixed"):
            raise CarrierProtocolError(
                f"jambonz mixType {_shown(mix)} is not supported: use mixType mono (one channel)"
            )
        params: dict[str, str] = {}
        for source in (message.get("customerData"), message, message.get("metadata")):
            if isinstance(source, dict):
                params.update(_scalars(source))
        sid = message.get("callSid")
        self.call_sid = sid if isinstance(sid, str) and sid else None
        self.rate = rate
        self.started = True
        return ev.CallStarted(
            call_sid=self.call_sid or "",
            stream_sid=self.call_sid or "",
            custom_parameters=params,
            encoding=f"pcm16/{rate}",
            sample_rate=rate,
        )

    def _audio(self, data: bytes) -> ev.CallerAudio | None:
        if not self.started:
            raise CarrierProtocolError("audio before the call-attributes frame")
        if len(data) % 2:
            raise CarrierProtocolError(f"audio frame of {len(data)} bytes is not 16-bit samples")
        return ev.CallerAudio(data) if data else None

    # -- outbound ----------------------------------------------------------------------------

    def media(self, payload: bytes) -> bytes:
        """One binary frame of 16-bit PCM, with no sample jambonz would take for a mark."""
        self._require_outbound()
        if len(payload) % 2:
            raise CarrierProtocolError(
                f"{len(payload)} bytes of audio is not 16-bit samples", who="local"
            )
        if _MARK_PLACEHOLDER not in payload:  # fast path: no -1 sample (nor a pair across two)
            return payload
        samples = np.frombuffer(payload, dtype="<i2")
        placeholders = samples == -1
        count = int(placeholders.sum())
        if not count:
            return payload
        self.samples_nudged += count
        nudged = samples.copy()
        nudged[placeholders] = -2
        return nudged.tobytes()

    def mark(self, name: str) -> str:
        """jambonz answers with ``"event":"playout"`` when the audio before it has played."""
        self._require_outbound()
        return orjson.dumps({"type": "mark", "data": {"name": name}}).decode()

    def clear(self) -> str:
        """``killAudio``: flush jambonz's buffer; it answers every pending mark as cleared."""
        self._require_outbound()
        return '{"type":"killAudio"}'

    def clear_marks(self) -> str:
        """``clearMarks``: jambonz forgets its pending marks and will never answer them.

        The runtime does not use it (a clear settles the marks with answers); it is here for
        tools that drive a stream by hand.
        """
        self._require_outbound()
        return '{"type":"clearMarks"}'

    def hangup(self) -> str:
        """``disconnect``: jambonz ends the ``listen`` verb and closes the socket."""
        return '{"type":"disconnect"}'

    def _require_outbound(self) -> None:
        if not self.started:
            raise CarrierProtocolError("cannot send before the call attributes", who="local")


def _rate(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in RATES:
        return raw
    if isinstance(raw, str) and raw.strip() in ("8000", "16000", "24000"):
        return int(raw)
    raise CarrierProtocolError(
        f"jambonz sampleRate {_shown(raw)} is not supported: set the listen verb's "
        "sampleRate and bidirectionalAudio.sampleRate to 8000, 16000 or 24000"
    )


def _shown(value: object) -> str:
    """A peer's value for an error message: short, and never the repr of a deep structure."""
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, bool | int | float):
        return repr(value)
    return f"<{type(value).__name__}>"


def _scalars(values: dict[str, Any]) -> dict[str, str]:
    """String, number and boolean values as text; objects, arrays and nulls left out."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if key in _NOT_PARAMETERS:
            continue
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool | int | float):
            out[key] = orjson.dumps(value).decode()
    return out
