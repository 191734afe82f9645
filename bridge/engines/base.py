"""What every agent engine offers the session core.

An engine is two pieces: a sans-I/O *protocol* (wire text in → session events out; engine actions
in → wire text out) and a thin *client* that owns the socket. The session core branches on
:class:`EngineCapabilities`, never on an engine's name.
"""

from __future__ import annotations

import abc
import binascii
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from bridge.errors import EngineProtocolError
from bridge.session.actions import EngineAction, SendAudio
from bridge.session.config import EngineCapabilities
from bridge.session.events import EngineEvent

__all__ = ["EngineCapabilities", "EngineClient", "EngineProtocol", "JsonEngineProtocol"]


class EngineProtocol(abc.ABC):
    """Sans-I/O half of an engine: no sockets, no clock, no ``await``."""

    capabilities: EngineCapabilities

    @abc.abstractmethod
    def opening_messages(self) -> list[str]:
        """Messages to send right after connecting (session configuration)."""

    @abc.abstractmethod
    def receive(self, data: str | bytes) -> list[EngineEvent]:
        """Parse one wire message. Raises :class:`~bridge.errors.EngineProtocolError`."""

    @abc.abstractmethod
    def encode(self, action: EngineAction) -> str | None:
        """Turn one engine action into one wire message; None when the engine needs none."""

    @abc.abstractmethod
    def audio_message(self, payload: bytes) -> str:
        """The wire message for one chunk of caller audio: the hot path."""

    def take_outgoing(self) -> Sequence[str]:
        """Replies owed to the engine for what it sent (e.g. ``pong`` for ``ping``); called
        after every message, so the default allocates nothing."""
        return ()


class JsonEngineProtocol(EngineProtocol):
    """An engine whose server sends JSON objects with a ``type``: parsing and error wrapping
    are shared; subclasses map each type to events in :meth:`dispatch`."""

    vendor = "engine"
    """Names the engine in error messages."""

    def receive(self, data: str | bytes) -> list[EngineEvent]:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise EngineProtocolError(f"{self.vendor} message is not JSON: {exc}") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise EngineProtocolError(f"{self.vendor} message has no type")
        kind: str = message["type"]
        try:
            return self.dispatch(kind, message)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise EngineProtocolError(f"malformed {self.vendor} {kind}: {exc!r}") from None

    @abc.abstractmethod
    def dispatch(self, kind: str, message: dict[str, Any]) -> list[EngineEvent]:
        """Events for one parsed message; raising KeyError/TypeError/ValueError means malformed."""


class EngineClient(abc.ABC):
    """I/O half of an engine: owns the connection, translates third-party errors."""

    capabilities: EngineCapabilities

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection and send the opening messages.

        Raises :class:`~bridge.errors.EngineUnavailable`."""

    @abc.abstractmethod
    async def send(self, action: EngineAction) -> None:
        """Send one action. A dead connection surfaces as ``EngineClosed`` from :meth:`events`."""

    async def send_audio(self, payload: bytes) -> None:
        """Hot path for caller audio; engines override it to skip the generic encoder."""
        await self.send(SendAudio(payload))

    @abc.abstractmethod
    def events(self) -> AsyncIterator[EngineEvent]:
        """Session events parsed from the engine, ending with ``EngineClosed``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; idempotent."""
