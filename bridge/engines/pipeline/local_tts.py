"""Offline text-to-speech for the pipeline: espeak-ng (:mod:`bridge.audio.espeak`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bridge.audio.espeak import EXECUTOR, synthesize_ulaw
from bridge.engines.pipeline.parts import SpeechChunk, TextToSpeech


class EspeakTTS(TextToSpeech):
    """espeak-ng as a pipeline part. ``voice`` is an espeak voice name (``en-us``, ``en-gb``…)."""

    def __init__(self, voice: str = "en-us", rate_wpm: int = 160) -> None:
        self.voice = voice
        self.rate_wpm = rate_wpm

    async def speak(self, text: str) -> AsyncIterator[SpeechChunk]:
        loop = asyncio.get_running_loop()
        audio, words = await loop.run_in_executor(
            EXECUTOR, synthesize_ulaw, text, self.voice, self.rate_wpm
        )
        yield SpeechChunk(audio, words)
