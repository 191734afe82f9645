"""Carrier wires for the simulated caller: each carrier's media-stream protocol, carrier side."""

from __future__ import annotations

from collections.abc import Callable

from bridge.simulate.carriers.audiosocket import AudioSocketWire
from bridge.simulate.carriers.base import CallerWire
from bridge.simulate.carriers.telnyx import TelnyxWire
from bridge.simulate.carriers.twilio import TwilioWire

__all__ = ["WIRES", "CallerWire"]

WIRES: dict[str, Callable[[], CallerWire]] = {
    "audiosocket": AudioSocketWire,
    "telnyx": TelnyxWire,
    "twilio": TwilioWire,
}
"""Every carrier the simulator speaks, by name (``callbridge simulate --carrier``)."""
