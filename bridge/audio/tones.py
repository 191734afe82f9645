"""Synthesised signalling audio: DTMF keypad tones and a hold-music loop. Pure functions.

DTMF follows ITU-T Q.23/Q.24: each key is the sum of one low-group and one high-group sine
(697-941 Hz × 1209-1633 Hz), each at about -10 dBm0, sent for 100 ms with 100 ms of silence
after it (receivers need ≥ 40 ms of tone and of pause). ``w`` is a 500 ms pause, as in Twilio's
``sendDigits``. Tones pass through the carrier's codec like speech: in-band, the way a phone
keypad sounds on a line that has no out-of-band DTMF.
"""

from __future__ import annotations

import math
from array import array
from functools import cache

from bridge.audio.transcode import Transcoder, parse_format

__all__ = ["DTMF_FREQUENCIES", "dtmf", "hold_music"]

DTMF_FREQUENCIES: dict[str, tuple[int, int]] = {
    key: (low, high)
    for low, row in zip((697, 770, 852, 941), ("123A", "456B", "789C", "*0#D"), strict=True)
    for high, key in zip((1209, 1336, 1477, 1633), row, strict=True)
}
TONE_MS = 100
GAP_MS = 100
PAUSE_MS = 500
_AMPLITUDE = 0.35 * 32767  # per tone: the pair peaks at 0.7 of full scale


def _encode(pcm: array[int], rate: int, fmt: str) -> bytes:
    converter = Transcoder(f"pcm16/{rate}", fmt)
    return converter.convert(pcm.tobytes()) + converter.flush()


def _pair(low: float, high: float, rate: int, ms: int) -> array[int]:
    n = rate * ms // 1000
    ramp = max(1, rate // 1000 * 5)  # 5 ms fade in and out: no clicks
    out = array("h", bytes(2 * n))
    for i in range(n):
        envelope = min(1.0, i / ramp, (n - 1 - i) / ramp)
        t = i / rate
        value = math.sin(2 * math.pi * low * t) + math.sin(2 * math.pi * high * t)
        out[i] = int(_AMPLITUDE * envelope * value)
    return out


def dtmf(digits: str, fmt: str) -> bytes:
    """The tones of ``digits`` (0-9 * # A-D, ``w`` = pause) in audio format ``fmt``."""
    _, rate = parse_format(fmt)
    pcm = array("h")
    for key in digits:
        if key == "w":
            pcm.extend(array("h", bytes(rate * PAUSE_MS // 1000 * 2)))
            continue
        frequencies = DTMF_FREQUENCIES.get(key.upper())
        if frequencies is None:
            raise ValueError(f"not a DTMF key: {key!r}")
        pcm.extend(_pair(*frequencies, rate, TONE_MS))
        pcm.extend(array("h", bytes(rate * GAP_MS // 1000 * 2)))
    return _encode(pcm, rate, fmt)


_MELODY = (523.25, 659.25, 783.99, 659.25, 587.33, 698.46, 880.0, 698.46)
"""C-E-G-E, D-F-A-F: a gentle two-chord arpeggio."""
NOTE_MS = 400


@cache
def hold_music(fmt: str) -> bytes:
    """A few seconds of soft music in ``fmt``, made to loop seamlessly."""
    _, rate = parse_format(fmt)
    pcm = array("h")
    n = rate * NOTE_MS // 1000
    for frequency in _MELODY:
        for i in range(n):
            t = i / rate
            envelope = min(1.0, i / (rate * 0.02)) * math.exp(-3.0 * i / n)
            value = math.sin(2 * math.pi * frequency * t) + 0.3 * math.sin(
                4 * math.pi * frequency * t
            )
            pcm.append(int(0.18 * 32767 * envelope * value))
    return _encode(pcm, rate, fmt)
