"""ElevenLabs streaming text-to-speech as a pipeline part.

HTTP streaming with timestamps (``POST /v1/text-to-speech/{voice}/stream/with-timestamps``) in
``ulaw_8000``: telephone audio straight from the vendor, nothing to resample, and each chunk's
character timings, from which barge-in keeps exactly the words heard. One request per sentence
on a kept-alive connection; cancelling the iteration closes the response (ElevenLabs stops).
"""

from __future__ import annotations

import binascii
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson

from bridge.engines.pipeline.parts import SpeechChunk, TextToSpeech, Word
from bridge.errors import EngineUnavailable

DEFAULT_MODEL = "eleven_flash_v2_5"


class AlignmentWords:
    """Character timings (seconds), chunk after chunk → words with start/end in milliseconds.

    A word may start in one chunk and end in the next, so a word is complete only at the
    white space after it (or at :meth:`flush`, the end of the speech)."""

    def __init__(self) -> None:
        self._word = ""
        self._start = self._end = 0.0

    def feed(self, alignment: Any) -> tuple[Word, ...]:
        if not isinstance(alignment, dict):
            return ()
        chars: Sequence[str] = alignment.get("characters") or ()
        starts: Sequence[float] = alignment.get("character_start_times_seconds") or ()
        ends: Sequence[float] = alignment.get("character_end_times_seconds") or ()
        words: list[Word] = []
        for char, start, end in zip(chars, starts, ends, strict=False):
            if char.isspace():
                words += self.flush()
                continue
            if not self._word:
                self._start = start
            self._word += char
            self._end = end
        return tuple(words)

    def flush(self) -> tuple[Word, ...]:
        if not self._word:
            return ()
        word = Word(self._word, self._start * 1000, self._end * 1000)
        self._word = ""
        return (word,)


class ElevenLabsTTS(TextToSpeech):
    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str,
        voice_id: str,
        model: str = DEFAULT_MODEL,
        language: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._api_key = api_key
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)
        self.voice_id = voice_id
        self.model = model
        self.language = language

    async def speak(self, text: str) -> AsyncIterator[SpeechChunk]:
        if not self._api_key:
            raise EngineUnavailable("ELEVENLABS_API_KEY is not set", retryable=False)
        body: dict[str, Any] = {"text": text, "model_id": self.model}
        if self.language:
            body["language_code"] = self.language
        path = f"/v1/text-to-speech/{self.voice_id}/stream/with-timestamps"
        try:
            async with self._client.stream(
                "POST",
                path,
                params={"output_format": "ulaw_8000"},
                json=body,
                headers={"xi-api-key": self._api_key},
            ) as response:
                if response.status_code != 200:
                    detail = (await response.aread())[:200].decode(errors="replace")
                    raise EngineUnavailable(
                        f"ElevenLabs TTS: HTTP {response.status_code} {detail}",
                        retryable=response.status_code >= 500 or response.status_code == 429,
                    )
                words = AlignmentWords()
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        chunk = orjson.loads(line)
                        audio = binascii.a2b_base64(chunk.get("audio_base64") or "")
                    except (orjson.JSONDecodeError, binascii.Error, AttributeError) as exc:
                        raise EngineUnavailable(f"ElevenLabs TTS: bad chunk: {exc!r}") from None
                    yield SpeechChunk(audio, words.feed(chunk.get("alignment")))
                yield SpeechChunk(b"", words.flush())
        except httpx.HTTPError as exc:
            raise EngineUnavailable(f"ElevenLabs TTS: {exc!r}") from None

    async def close(self) -> None:
        await self._client.aclose()
