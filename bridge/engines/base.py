"""What every agent engine offers the session core.

An engine is two pieces: a sans-I/O *protocol* (wire text in → session events out; engine actions
in → wire text out) and a thin *client* that owns the socket. The session core branches on
:class:`EngineCapabilities`, never on an engine's name.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bridge.session.actions import EngineAction
from bridge.session.events import EngineEvent


@dataclass(frozen=True, slots=True)
class EngineCapabilities:
    """What an engine can do, so the session can decide without knowing which engine it is."""

    server_vad: bool
    """The engine detects caller speech itself and reports ``SpeechStarted``."""
    truncates: bool
    """The engine accepts ``TruncateAgent`` to forget unheard agent audio."""
    auto_interrupt: bool
    """The engine cancels its own response when the caller starts speaking."""
    transcripts: bool
    """The engine reports ``UserTranscript`` and ``AgentTranscript``."""
    audio_formats: tuple[str, ...]
    """Audio formats it accepts and produces, best first ("pcmu", "pcma", "pcm16/24000")."""


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

    @abc.abstractmethod
    def events(self) -> AsyncIterator[EngineEvent]:
        """Session events parsed from the engine, ending with ``EngineClosed``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; idempotent."""
