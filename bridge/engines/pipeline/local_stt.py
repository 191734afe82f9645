"""Offline speech-to-text: pocketsphinx (its en-US model ships in the wheel).

On telephone audio the full language model recognises little; a small JSGF grammar built from
the phrases a scripted agent expects is exact and ≈20× faster (measured: RTF ≈ 0.02). So the
part takes the agent's phrases and decodes each utterance against them (or the full model when
there are none).

pocketsphinx holds the GIL while it decodes (tens of ms per utterance with a grammar, hundreds
with the full model), which would stall every call on the event loop. Decoding runs in one
worker process per bridge process (``spawn``), which keeps one decoder and one compiled grammar
per phrase set. The event loop only buffers audio and ships an utterance across at turn end.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing as mp
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from bridge.audio import g711
from bridge.engines.pipeline.parts import SpeechToText
from bridge.errors import EngineUnavailable

_WORD = re.compile(r"[a-z0-9']+")
PREROLL_BYTES = 8 * 300
"""μ-law kept from before the first voiced frame (300 ms): word onsets are quiet."""
MAX_UTTERANCE_BYTES = 8 * 30_000
"""Longest utterance decoded (30 s); older audio is dropped."""


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def grammar(phrases: Sequence[str]) -> str:
    """A JSGF grammar: one or more of ``phrases``, back to back."""
    cleaned = list(dict.fromkeys(" ".join(words_of(p)) for p in phrases if words_of(p)))
    if not cleaned:
        raise ValueError("no phrases to build a grammar from")
    body = " | ".join(f"( {p} )" for p in cleaned)
    return f"#JSGF V1.0;\ngrammar agent;\npublic <utterance> = ( {body} )+ ;\n"


# --- the worker process ---------------------------------------------------------------------

_decoder: Any = None
_searches: dict[str, str] = {}


def _worker_decoder() -> Any:
    global _decoder  # noqa: PLW0603 - one decoder per worker process
    if _decoder is None:
        from pocketsphinx import Decoder  # type: ignore[import-untyped]

        _decoder = Decoder(samprate=16000, loglevel="FATAL")
        _searches[""] = _decoder.current_search()
        _searches["cmn"] = _decoder.get_cmn()
    return _decoder


def unknown_words(phrases: Sequence[str]) -> list[str]:
    """Words of ``phrases`` missing from the pocketsphinx dictionary (runs in the worker)."""
    dec = _worker_decoder()
    return sorted({w for p in phrases for w in words_of(p) if dec.lookup_word(w) is None})


def decode(pcm16k: bytes, jsgf: str) -> str:
    """Recognise one utterance (PCM16 16 kHz) with ``jsgf`` ('' = the full language model)."""
    dec = _worker_decoder()
    search = _searches.get(jsgf)
    if search is None:
        search = f"g{len(_searches)}"
        dec.add_jsgf_string(search, jsgf)
        _searches[jsgf] = search
    dec.activate_search(search)
    dec.set_cmn(_searches["cmn"])  # every utterance starts from the same state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        dec.start_stream()  # resets the noise floor too
    dec.start_utt()
    for start in range(0, len(pcm16k), 640):
        dec.process_raw(pcm16k[start : start + 640], False, False)
    dec.end_utt()
    hyp = dec.hyp()
    return "" if hyp is None else " ".join(words_of(hyp.hypstr))


# --- the event-loop side --------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None


def _executor() -> ProcessPoolExecutor:
    global _pool  # noqa: PLW0603 - one recogniser process per bridge process
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
    return _pool


async def run_in_recogniser(fn: Any, *args: Any) -> Any:
    global _pool  # noqa: PLW0603 - replaced when the worker died
    loop = asyncio.get_running_loop()
    call = functools.partial(fn, *args)
    try:
        return await loop.run_in_executor(_executor(), call)
    except BrokenProcessPool:
        _pool = None
        try:
            return await loop.run_in_executor(_executor(), call)
        except BrokenProcessPool as exc:
            raise EngineUnavailable("the pocketsphinx worker process died") from exc


async def warm_up() -> None:
    """Start the recogniser process and load its model (≈1 s) before the first call needs it."""
    await run_in_recogniser(unknown_words, ())


SILENCE_LEVEL = 64
"""PCM16 peak below which a 10 ms block counts as silence (μ-law's digital zero is 0)."""
MARGIN_BYTES = 8 * 60


def trim_silence(ulaw: bytes) -> bytes:
    """``ulaw`` without its leading and trailing silence, but for a 60 ms margin.

    The VAD's pre-roll and endpointing pause surround every utterance with up to a second of
    silence: decoding it costs time, and on a clean line's digital silence (all-zero samples)
    pocketsphinx inserted stray words (measured: "goodbye" → "on at bye" with 0.3 s + 0.6 s of
    zeros around it, "goodbye" without)."""
    if not ulaw:
        return ulaw
    pcm = np.abs(np.frombuffer(g711.ulaw_to_pcm16(ulaw), dtype="<i2").astype(np.int32))
    blocks = pcm[: len(pcm) - len(pcm) % 80].reshape(-1, 80).max(axis=1)
    loud = np.flatnonzero(blocks >= SILENCE_LEVEL)
    if loud.size == 0:
        return b""
    start = max(0, int(loud[0]) * 80 - MARGIN_BYTES)
    end = min(len(ulaw), (int(loud[-1]) + 1) * 80 + MARGIN_BYTES)
    return ulaw[start:end]


def telephone_to_16k(ulaw: bytes) -> bytes:
    """μ-law 8 kHz → PCM16 16 kHz by sample repetition: its spectral images above 4 kHz stand in
    for the band the wideband model expects (recognised better than a clean upsampling)."""
    return np.repeat(np.frombuffer(g711.ulaw_to_pcm16(ulaw), dtype="<i2"), 2).tobytes()


class PocketsphinxSTT(SpeechToText):
    """pocketsphinx as a pipeline part; ``phrases`` become its grammar."""

    def __init__(self, phrases: Sequence[str] = ()) -> None:
        self.phrases = tuple(phrases)
        self._jsgf = grammar(self.phrases) if self.phrases else ""
        self._audio = bytearray()

    async def start(self) -> None:
        if not self.phrases:
            return
        missing = await run_in_recogniser(unknown_words, self.phrases)
        if missing:
            raise EngineUnavailable(
                f"words missing from the pocketsphinx dictionary: {', '.join(missing)}",
                retryable=False,
            )

    async def feed(self, audio: bytes) -> None:
        self._audio += audio
        if len(self._audio) > MAX_UTTERANCE_BYTES:
            del self._audio[: len(self._audio) - MAX_UTTERANCE_BYTES]

    def speech_started(self, preroll_ms: int) -> None:
        keep = 8 * preroll_ms + PREROLL_BYTES
        if len(self._audio) > keep:
            del self._audio[: len(self._audio) - keep]

    async def finalize(self) -> str:
        audio, self._audio = trim_silence(bytes(self._audio)), bytearray()
        if not audio:
            return ""
        text: str = await run_in_recogniser(decode, telephone_to_16k(audio), self._jsgf)
        return text
