"""What every agent engine offers the session core.

An engine is two pieces: a sans-I/O *protocol* (wire text in → session events out; engine actions
in → wire text out) and a thin *client* that owns the socket. The session core branches on
:class:`EngineCapabilities`, never on an engine's name.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from bridge.session.actions import EngineAction, SendAudio
from bridge.session.config import EngineCapabilities
from bridge.session.events import EngineEvent

__all__ = ["EngineCapabilities", "EngineClient", "EngineProtocol"]


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
    def encode(self, action: EngineAction) -> str:
        """Turn one engine action into one wire message."""


class EngineClient(abc.ABC):
    """I/O half of an engine: owns the connection, translates third-party errors."""

    protocol: EngineProtocol

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
