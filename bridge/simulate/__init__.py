"""The Twilio side of a call, simulated: test calls (``callbridge simulate``) and end-to-end tests.

* :mod:`bridge.simulate.wire` — Twilio Media Streams frames as the carrier sends them, and a
  strict parser of what a bridge sends back (pure).
* :mod:`bridge.simulate.playback` — Twilio's outbound buffer (audio at 8 bytes/ms, marks,
  clear) and per-turn latency bookkeeping, with time passed in (pure).
* :mod:`bridge.simulate.caller` — :class:`TwilioCaller`, the asyncio websockets client that
  drives both on the real clock.
* :mod:`bridge.simulate.cli` — the ``simulate`` subcommand.
"""

from __future__ import annotations

from bridge.simulate.caller import ClearRecord, SimulatedCallError, TimelineEvent, TwilioCaller
from bridge.simulate.playback import MarkReached, PlaybackBuffer, PlayedAudio, TurnTimer

__all__ = [
    "ClearRecord",
    "MarkReached",
    "PlaybackBuffer",
    "PlayedAudio",
    "SimulatedCallError",
    "TimelineEvent",
    "TurnTimer",
    "TwilioCaller",
]
