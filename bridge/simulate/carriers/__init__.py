"""Carrier wires for the simulated caller: each carrier's media-stream protocol, carrier side."""

from __future__ import annotations

from collections.abc import Callable

from bridge.simulate.carriers.asterisk import AsteriskWire
from bridge.simulate.carriers.audiosocket import AudioSocketWire
from bridge.simulate.carriers.base import CallerWire
from bridge.simulate.carriers.exotel import ExotelWire
from bridge.simulate.carriers.jambonz import JambonzWire
from bridge.simulate.carriers.plivo import PlivoWire
from bridge.simulate.carriers.telnyx import TelnyxWire
from bridge.simulate.carriers.twilio import TwilioWire
from bridge.simulate.carriers.vonage import VonageWire

__all__ = ["WIRES", "CallerWire"]

WIRES: dict[str, Callable[[], CallerWire]] = {
    "asterisk": AsteriskWire,
    "audiosocket": AudioSocketWire,
    "exotel": ExotelWire,
    "jambonz": JambonzWire,
    "plivo": PlivoWire,
    "telnyx": TelnyxWire,
    "twilio": TwilioWire,
    "vonage": VonageWire,
}
"""Every carrier the simulator speaks, by name (``callbridge simulate --carrier``)."""
