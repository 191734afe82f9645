"""The callbridge exception tree.

Every error callbridge raises on purpose derives from :class:`CallbridgeError`::

    CallbridgeError
    ├── ProtocolError            a wire message could not be parsed or is not allowed now
    │   ├── CarrierProtocolError     ... from (or to) the carrier: Twilio, Telnyx, ...
    │   └── EngineProtocolError      ... from (or to) the agent engine: OpenAI Realtime, ...
    ├── ConfigError              an agent, prompt or setting is wrong (missing variable, bad TOML)
    ├── EngineUnavailable        the engine could not be reached or closed (``retryable`` says
    │                            whether trying again may help)
    └── ToolError                a tool webhook failed (timeout, HTTP error, bad reply)

Errors carry data, not just text: ``who`` says which side was at fault (``"local"`` when
callbridge produced something invalid, ``"remote"`` when the peer did), ``retryable`` whether a
retry may help. Third-party exceptions (websockets, httpx, SQLAlchemy) are translated into these at
the I/O boundary; pure cores raise only these.
"""

from __future__ import annotations

from typing import Literal

Side = Literal["local", "remote"]


class CallbridgeError(Exception):
    """Base of every error callbridge raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class ProtocolError(CallbridgeError):
    """A wire message was malformed or not allowed in the current state."""

    def __init__(self, message: str, *, who: Side = "remote") -> None:
        super().__init__(message)
        self.who: Side = who


class CarrierProtocolError(ProtocolError):
    """The carrier side of a call broke its protocol (or we were about to)."""


class CarrierStartRefused(CarrierProtocolError):
    """The carrier's start asks for what the bridge cannot do (an audio format, say): the call
    cannot begin, and waiting for another start would only keep the caller on dead air."""


class EngineProtocolError(ProtocolError):
    """The engine side of a call broke its protocol (or we were about to)."""


class ConfigError(CallbridgeError):
    """An agent definition, prompt template or setting is wrong."""


class EngineUnavailable(CallbridgeError):
    """The agent engine could not be reached, refused us, or went away mid-call."""

    retryable = True


class ToolError(CallbridgeError):
    """A tool webhook failed: timeout, transport error, non-2xx answer or unreadable reply."""


class CarrierApiError(CallbridgeError):
    """A carrier's REST API refused or failed a call-control request (e.g. hang-up)."""
