"""What every carrier codec offers the runtime: wire frames in → session events, actions out.

A codec is sans-I/O: no socket, no clock. :meth:`CarrierCodec.parse` returns one session event
(or ``None`` for frames that carry nothing the session needs) and raises
:class:`~bridge.errors.CarrierProtocolError` for anything malformed; the codec stays usable
after an error (the runtime journals it and carries on).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import orjson

from bridge.errors import CarrierProtocolError
from bridge.session import events as ev

MAX_FRAME_CHARS = 256 * 1024
"""Largest control/media frame a JSON carrier may send (far above any real one)."""


class CarrierCodec(abc.ABC):
    carrier: str
    """The carrier's name in the journal ("twilio", "telnyx", …)."""

    @abc.abstractmethod
    def parse(self, data: str | bytes) -> ev.CarrierEvent | None:
        """One frame from the carrier."""

    @abc.abstractmethod
    def media(self, payload: bytes) -> str:
        """The frame that plays ``payload`` (carrier audio format) to the caller."""

    @abc.abstractmethod
    def mark(self, name: str) -> str:
        """The frame asking the carrier to report when playback reaches this point."""

    @abc.abstractmethod
    def clear(self) -> str:
        """The frame that drops every piece of audio not yet played."""


def json_frame(data: str | bytes) -> dict[str, Any]:
    """One JSON carrier frame as an object, or ``CarrierProtocolError`` saying what is wrong."""
    if len(data) > MAX_FRAME_CHARS:
        raise CarrierProtocolError(f"frame of {len(data)} bytes is larger than allowed")
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CarrierProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise CarrierProtocolError("frame is not a JSON object")
    return message


def field_object(message: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if not isinstance(value, dict):
        raise CarrierProtocolError(f"{key!r} must be an object")
    return value


def field_text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str):
        raise CarrierProtocolError(f"{key!r} must be a string")
    return value
