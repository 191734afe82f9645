"""espeak-ng speech synthesis through the ``espeakng-loader`` wheel (no apt package).

espeak-ng renders a sentence in ≈10 ms, reporting where every word starts (``espeakEVENT_WORD``
with its audio position), so barge-in can keep exactly the words the caller heard. The library
is one process-wide instance with global state (its callback) and not thread-safe: every
synthesis runs on one dedicated thread, :data:`EXECUTOR` (ctypes releases the GIL while
espeak-ng works, so the event loop of whoever waits for it keeps running).
"""

from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bridge.audio import g711
from bridge.audio.resample import resample
from bridge.audio.words import Word
from bridge.errors import EngineUnavailable

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_PARAM_RATE = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class Espeak:
    """The espeak-ng library, loaded once per process. Use only from :data:`EXECUTOR` (or
    :func:`run_espeak`): the library is one instance with global state, whoever loads it."""

    _instance: Espeak | None = None
    _lock = threading.Lock()

    @classmethod
    def get(cls) -> Espeak:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        import espeakng_loader  # type: ignore[import-untyped]

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if rate <= 0:
            raise EngineUnavailable(f"espeak-ng failed to initialise ({rate})", retryable=False)
        self.lib = lib
        self.rate: int = rate
        self._samples: list[bytes] = []
        self._words: list[tuple[int, int, int]] = []  # (text position, length, audio ms)
        self._callback = _Callback(self._on_synth)  # referenced for the life of the process
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav: Any, count: int, events: Any) -> int:
        if wav and count > 0:
            self._samples.append(ctypes.string_at(wav, count * 2))
        index = 0
        while events and events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_WORD:
                self._words.append((event.text_position, event.length, event.audio_position))
            index += 1
        return 0

    def synth_events(
        self, text: str, voice: str, rate_wpm: int
    ) -> tuple[bytes, list[tuple[int, int, int]]]:
        """PCM16 at :attr:`rate`, and (character index from 0, length, start ms) per word."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EngineUnavailable(f"espeak-ng has no voice {voice!r}", retryable=False)
        self.lib.espeak_SetParameter(_ESPEAK_PARAM_RATE, rate_wpm, 0)
        # The callback is process-wide state of the library: claim it for this synthesis.
        self.lib.espeak_SetSynthCallback(self._callback)
        encoded = text.encode()
        self._samples, self._words = [], []
        err = self.lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, 0, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        if err != 0:
            raise EngineUnavailable(f"espeak-ng synthesis failed ({err})")
        # espeak counts text positions in characters, from 1
        return b"".join(self._samples), [(p - 1, n, ms) for p, n, ms in self._words]

    def synth(self, text: str, voice: str, rate_wpm: int) -> tuple[bytes, list[Word]]:
        """PCM16 at :attr:`rate` and the words with their start and end in milliseconds."""
        pcm, events = self.synth_events(text, voice, rate_wpm)
        total_ms = len(pcm) / 2 / self.rate * 1000
        words: list[Word] = []
        for i, (index, length, start_ms) in enumerate(events):
            end_ms = events[i + 1][2] if i + 1 < len(events) else total_ms
            words.append(Word(text[index : index + length], float(start_ms), float(end_ms)))
        return pcm, words


EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
"""The one thread espeak-ng runs on (the library keeps global state)."""


def run_espeak(text: str, voice: str = "en-us", rate_wpm: int = 160) -> tuple[bytes, int]:
    """Blocking, from any thread: PCM16 of ``text`` and its sample rate (serialised on
    :data:`EXECUTOR`, so it never overlaps the engine's own synthesis)."""

    def synth() -> tuple[bytes, int]:
        engine = Espeak.get()
        return engine.synth(text, voice, rate_wpm)[0], engine.rate

    return EXECUTOR.submit(synth).result()


def synthesize_ulaw(
    text: str, voice: str = "en-us", rate_wpm: int = 160
) -> tuple[bytes, tuple[Word, ...]]:
    """Blocking, on the espeak thread: ``text`` as μ-law 8 kHz, with its word timings."""
    engine = Espeak.get()
    pcm, words = engine.synth(text, voice, rate_wpm)
    return g711.pcm16_to_ulaw(resample(pcm, engine.rate, 8000)), tuple(words)
