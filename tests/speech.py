"""Offline text-to-speech and speech-to-text for end-to-end tests.

Synthesis is espeak-ng (the ``espeakng_loader`` wheel, driven through ctypes); recognition is
pocketsphinx with its bundled en-US model. Neither needs a network or an apt package. They are
good enough to check that *words* crossed a bridge, not that audio is pristine: compare with
:func:`words_match`, never with ``==``.

Everything here is synchronous and reads no clock (house rule for audio helpers); callers on an
event loop run :func:`recognize` through ``asyncio.to_thread``. espeak-ng and the pocketsphinx
decoder are process-wide singletons guarded by locks, so concurrent threads are safe (they take
turns).

Facts worth knowing:

* espeak-ng is not bit-for-bit repeatable: its waveform generator keeps state (flutter phase,
  noise generator seeded from the clock) across calls that no API resets, so the same text
  differs by a few samples depending on what was spoken before. Results are cached per
  process; assert on recognised words, never on audio bytes.
* espeak-ng renders at 22050 Hz; pocketsphinx only accepts 16 kHz, so audio is resampled with
  soxr (HQ, one-shot — fine for tests, never for the live path).
* The full language model gets only ~0–60 % of the content words of espeak speech (≈0.6 s per
  3 s sentence). A small JSGF grammar built from the phrases the test may hear
  (``grammar_words=``, with distractors) gives the exact text in ≈50 ms. Use it for asserts.
* :func:`recognize` is a pure function of its input (decoder state is reset per call); 20 ms
  chunks and one whole-utterance call give identical results once that state is reset.
"""

from __future__ import annotations

import functools
import re
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from bridge.audio.espeak import run_espeak

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = [
    "ESPEAK_RATE",
    "RECOGNIZER_RATE",
    "content_words",
    "recognize",
    "recognize_ulaw8k",
    "resample_pcm16",
    "synthesize",
    "synthesize_pcm",
    "synthesize_ulaw8k",
    "ulaw_to_pcm16",
    "word_ratio",
    "words_match",
]

ESPEAK_RATE = 22050
"""Sample rate espeak-ng renders at (returned by ``espeak_Initialize``)."""

RECOGNIZER_RATE = 16000
"""The only rate the bundled pocketsphinx acoustic model accepts."""


@functools.lru_cache(maxsize=256)
def synthesize(text: str, *, voice: str = "en-us", rate_wpm: int = 150) -> tuple[bytes, int]:
    """Speak ``text`` with espeak-ng: (PCM16 little-endian mono bytes, sample rate).

    Through callbridge's own espeak-ng wrapper: the library is one instance per process with a
    global callback, so the tests and the offline engine under test must take turns on it."""
    return run_espeak(text, voice, rate_wpm)


def resample_pcm16(pcm16: bytes, rate_in: int, rate_out: int) -> bytes:
    """One-shot HQ resampling of PCM16 mono (soxr). Not for streaming use."""
    if rate_in == rate_out or not pcm16:
        return pcm16
    import soxr  # type: ignore[import-untyped]

    samples = np.frombuffer(pcm16, dtype="<i2")
    out = soxr.resample(samples, rate_in, rate_out, quality="HQ")
    return np.asarray(out, dtype="<i2").tobytes()


@functools.lru_cache(maxsize=256)
def synthesize_pcm(text: str, rate: int, *, voice: str = "en-us", rate_wpm: int = 150) -> bytes:
    """Speak ``text`` as PCM16 mono at ``rate`` Hz (e.g. 24000 for OpenAI ``audio/pcm``)."""
    pcm, native = synthesize(text, voice=voice, rate_wpm=rate_wpm)
    return resample_pcm16(pcm, native, rate)


@functools.lru_cache(maxsize=256)
def synthesize_ulaw8k(text: str, *, voice: str = "en-us", rate_wpm: int = 150) -> bytes:
    """Speak ``text`` as G.711 μ-law at 8 kHz (Twilio media payload / OpenAI ``audio/pcmu``)."""
    return audioop.lin2ulaw(synthesize_pcm(text, 8000, voice=voice, rate_wpm=rate_wpm), 2)


def ulaw_to_pcm16(data: bytes) -> bytes:
    """Decode G.711 μ-law to PCM16 (same rate)."""
    return audioop.ulaw2lin(data, 2)


# --------------------------------------------------------------------------- recognition

_WORD_RE = re.compile(r"[a-z0-9']+")
_CHUNK_BYTES = RECOGNIZER_RATE * 2 * 20 // 1000  # 20 ms of PCM16 at 16 kHz
_STOP_WORDS = frozenset(
    (
        "a", "an", "the", "and", "or", "but", "to", "of", "in", "on", "at", "for", "is", "are",
        "was", "be", "it", "i", "you", "we", "they", "he", "she", "my", "your", "our", "will",
        "would", "can", "could", "do", "does", "did", "has", "have", "had", "this", "that",
        "with", "as", "so",
    )
)  # fmt: skip


def _tokens(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


class _Recognizer:
    """One pocketsphinx decoder: the full LM search plus one JSGF search per phrase set.

    pocketsphinx adapts two things across utterances — the live cepstral mean and the noise
    floor of its ``remove_noise`` stage (forced on by the model's feat.params) — so the same
    audio decoded after different audio gave different words. Both are reset before every
    utterance, which makes :func:`recognize` a pure function of its input. Use only under
    ``_DECODER_LOCK``.
    """

    def __init__(self) -> None:
        from pocketsphinx import Decoder  # type: ignore[import-untyped]

        self.decoder: Any = Decoder(samprate=RECOGNIZER_RATE, loglevel="FATAL")
        self.lm_search: str = self.decoder.current_search()
        self.initial_cmn: str = self.decoder.get_cmn()
        self.grammars: dict[tuple[str, ...], str] = {}

    def grammar_search(self, phrases: tuple[str, ...]) -> str:
        name = self.grammars.get(phrases)
        if name is not None:
            return name
        cleaned = list(dict.fromkeys(" ".join(_tokens(p)) for p in phrases if _tokens(p)))
        if not cleaned:
            raise ValueError("grammar_words holds no words")
        missing = sorted(
            {w for p in cleaned for w in p.split() if self.decoder.lookup_word(w) is None}
        )
        if missing:
            raise ValueError(f"words missing from the pocketsphinx dictionary: {missing}")
        body = " | ".join(f"( {p} )" for p in cleaned)
        name = f"grammar{len(self.grammars)}"
        # One or more of the phrases, back to back; nothing else can be recognised.
        jsgf = f"#JSGF V1.0;\ngrammar {name};\npublic <utterance> = ( {body} )+ ;\n"
        self.decoder.add_jsgf_string(name, jsgf)
        self.grammars[phrases] = name
        return name

    def decode(self, pcm16k: bytes, search: str) -> str:
        dec = self.decoder
        dec.activate_search(search)
        dec.set_cmn(self.initial_cmn)
        with warnings.catch_warnings():
            # Deprecated as a stream marker, but still the only way to reset the noise floor.
            warnings.simplefilter("ignore", DeprecationWarning)
            dec.start_stream()
        dec.start_utt()
        for start in range(0, len(pcm16k), _CHUNK_BYTES):
            dec.process_raw(pcm16k[start : start + _CHUNK_BYTES], False, False)
        dec.end_utt()
        hyp = dec.hyp()
        return "" if hyp is None else " ".join(_tokens(hyp.hypstr))


_DECODER_LOCK = threading.Lock()
_recognizer: _Recognizer | None = None


def _prepare(pcm16: bytes, rate: int) -> bytes:
    """Telephone-band 16 kHz input for the wideband acoustic model.

    Audio is band-limited to 8 kHz (soxr HQ) and brought back to 16 kHz by sample repetition
    rather than a clean filter: the spectral images left in 4–8 kHz stand in for the band the
    model expects. On espeak sentences this measured best of everything tried (soxr HQ, linear
    interpolation, zero stuffing, spectral folding, and espeak's own 22 kHz audio). Silence
    padding and dither were tried too and made grammar results worse (stray trailing words).
    """
    pcm8 = resample_pcm16(pcm16, rate, 8000)
    return np.repeat(np.frombuffer(pcm8, dtype="<i2"), 2).tobytes()


def recognize(pcm16: bytes, rate: int, *, grammar_words: Sequence[str] | None = None) -> str:
    """Recognise English speech in PCM16 mono at ``rate`` Hz; lowercase words, "" if none.

    Without ``grammar_words`` the full pocketsphinx language model is searched: expect 0–60 %
    (about a quarter on average) of the content words of espeak speech.
    ``grammar_words`` — phrases (or single words) the audio may contain — restricts the search
    to one or more of those phrases back to back: on espeak speech this gives the exact text,
    ~15× faster. Give a few distractor phrases too, or any audio will match the only phrase.
    Every word must be in the pocketsphinx dictionary (``ValueError`` otherwise).
    """
    global _recognizer  # noqa: PLW0603 - lazy process-wide singleton, guarded by _DECODER_LOCK
    pcm16k = _prepare(pcm16, rate)
    with _DECODER_LOCK:
        if _recognizer is None:
            _recognizer = _Recognizer()
        if grammar_words:
            search = _recognizer.grammar_search(tuple(grammar_words))
        else:
            search = _recognizer.lm_search
        return _recognizer.decode(pcm16k, search)


def recognize_ulaw8k(data: bytes, *, grammar_words: Sequence[str] | None = None) -> str:
    """:func:`recognize` for G.711 μ-law at 8 kHz."""
    return recognize(ulaw_to_pcm16(data), 8000, grammar_words=grammar_words)


def content_words(text: str) -> list[str]:
    """Lowercase words of ``text`` without common function words (which recognisers drop)."""
    words = _tokens(text)
    content = [w for w in words if w not in _STOP_WORDS]
    return content or words


def word_ratio(heard: str, expected: str) -> float:
    """Fraction of the content words of ``expected`` found in ``heard`` (1.0 if none expected)."""
    wanted = content_words(expected)
    if not wanted:
        return 1.0
    got = set(_tokens(heard))
    return sum(1 for w in wanted if w in got) / len(wanted)


def words_match(heard: str, expected: str, min_ratio: float = 0.6) -> bool:
    """True if at least ``min_ratio`` of the content words of ``expected`` occur in ``heard``."""
    return word_ratio(heard, expected) >= min_ratio
