"""The fake engine's pure half: GA server events as JSON text, session state, audio formats.

No I/O, no clock: :mod:`bench.fake_engine` owns the sockets and the time. Every builder's output
is checked against the ``openai`` SDK's GA server event types in ``tests/bench``.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

import orjson

__all__ = [
    "SESSION_DEFAULTS",
    "Events",
    "bench_call",
    "merge_session",
    "wire_format",
]

SESSION_DEFAULTS: dict[str, Any] = {
    "type": "realtime",
    "object": "realtime.session",
    "model": "gpt-realtime",
    "output_modalities": ["audio"],
    "instructions": "",
    "audio": {
        "input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None},
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0},
    },
    "tools": [],
    "tool_choice": "auto",
    "max_output_tokens": "inf",
}


class Events:
    """Server events of one connection as JSON text. Ids are counters: cheap and unique."""

    def __init__(self, conn_id: int) -> None:
        self.conn_id = conn_id
        self._n = 0

    def next_id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self.conn_id}_{self._n}"

    def _dump(self, kind: str, **fields: Any) -> str:
        return orjson.dumps({"type": kind, "event_id": self.next_id("event"), **fields}).decode()

    def session(self, kind: str, session: dict[str, Any]) -> str:
        return self._dump(kind, session={**session, "id": f"sess_{self.conn_id}"})

    def error(self, code: str, message: str, client_event_id: str | None = None) -> str:
        error = {"type": "invalid_request_error", "code": code, "message": message}
        if client_event_id:
            error["event_id"] = client_event_id
        return self._dump("error", error=error)

    def response(self, kind: str, response_id: str, status: str, reason: str | None = None) -> str:
        body: dict[str, Any] = {
            "id": response_id,
            "object": "realtime.response",
            "status": status,
            "output_modalities": ["audio"],
            "conversation_id": f"conv_{self.conn_id}",
        }
        if reason is not None:
            body["status_details"] = {"type": status, "reason": reason}
        return self._dump(kind, response=body)

    def output_item(self, kind: str, response_id: str, item_id: str, status: str) -> str:
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": [],
        }
        return self._dump(kind, response_id=response_id, output_index=0, item=item)

    def content_part(self, kind: str, response_id: str, item_id: str, transcript: str) -> str:
        return self._dump(
            kind,
            response_id=response_id,
            item_id=item_id,
            output_index=0,
            content_index=0,
            part={"type": "audio", "transcript": transcript},
        )

    def audio_delta_prefix(self, response_id: str, item_id: str) -> str:
        """Everything of an audio delta before its ``event_id`` value (built once per answer)."""
        return (
            '{"type":"response.output_audio.delta","response_id":"'
            + response_id
            + '","item_id":"'
            + item_id
            + '","output_index":0,"content_index":0,"event_id":"'
        )

    def audio_delta(self, prefix: str, audio: bytes) -> str:
        """The hot path: one ``response.output_audio.delta``, built from a string template."""
        return self.audio_delta_b64(prefix, binascii.b2a_base64(audio, newline=False).decode())

    def audio_delta_b64(self, prefix: str, b64: str) -> str:
        """The same with the audio already in base64 (constant PCM deltas are encoded once)."""
        return prefix + self.next_id("event") + '","delta":"' + b64 + '"}'

    def item_event(self, kind: str, response_id: str, item_id: str, **fields: Any) -> str:
        return self._dump(
            kind,
            response_id=response_id,
            item_id=item_id,
            output_index=0,
            content_index=0,
            **fields,
        )

    def speech_started(self, audio_start_ms: int, item_id: str) -> str:
        return self._dump(
            "input_audio_buffer.speech_started", audio_start_ms=audio_start_ms, item_id=item_id
        )

    def speech_stopped(self, audio_end_ms: int, item_id: str) -> str:
        return self._dump(
            "input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id
        )

    def committed(self, item_id: str) -> str:
        return self._dump("input_audio_buffer.committed", item_id=item_id)

    def user_item(self, item_id: str) -> str:
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        return self._dump("conversation.item.added", item=item)

    def user_transcript(self, item_id: str, text: str) -> str:
        return self._dump(
            "conversation.item.input_audio_transcription.completed",
            item_id=item_id,
            content_index=0,
            transcript=text,
            usage={"type": "duration", "seconds": 1},
        )

    def item_created(self, item: Any) -> tuple[str, str]:
        """``conversation.item.added`` then ``.done`` for a client's ``conversation.item.create``.

        The real server echoes the item with its id (or one it makes up) and ``object``/
        ``status`` filled in; message content is echoed as given.
        """
        echoed = dict(item) if isinstance(item, dict) else {}
        echoed.setdefault("id", self.next_id("item"))
        echoed.update(object="realtime.item", status="completed")
        return (
            self._dump("conversation.item.added", previous_item_id=None, item=echoed),
            self._dump("conversation.item.done", previous_item_id=None, item=echoed),
        )

    def cleared(self) -> str:
        return self._dump("input_audio_buffer.cleared")

    def truncated(self, item_id: str, audio_end_ms: int) -> str:
        return self._dump(
            "conversation.item.truncated",
            item_id=item_id,
            content_index=0,
            audio_end_ms=audio_end_ms,
        )


def merge_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``session.update`` semantics: only the fields present change."""
    merged = dict(current)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_session(merged[key], value)
        else:
            merged[key] = value
    return merged


WIRE_RATES = {
    "audio/pcmu": ("pcmu", 8000),
    "audio/pcma": ("pcma", 8000),
    "audio/pcm": ("pcm", 24000),
}
"""GA format type → (encoding, rate). ``audio/pcm`` takes only ``rate`` 24000."""


def wire_format(session: dict[str, Any], direction: str) -> str:
    """``"pcmu"``, ``"pcma"`` or ``"pcm"`` (16-bit 24 kHz) for ``direction`` ``input``/``output``.

    A session that names no format, or one the GA API does not have, keeps the real server's
    default, 24 kHz PCM.
    """
    audio = session.get("audio")
    side = audio.get(direction) if isinstance(audio, dict) else None
    fmt = side.get("format") if isinstance(side, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    return WIRE_RATES.get(str(kind), ("pcm", 24000))[0]


_BENCH_CALL = re.compile(r"bench_call=(\d+)")


def bench_call(session: dict[str, Any]) -> int | None:
    """The load generator's call index, if the session's instructions carry ``bench_call=N``.

    Audio that was resampled carries no byte stamp: the harness puts the call index in the prompt
    instead (callbridge renders the Twilio ``customParameters`` into it; the Pipecat bot does the
    same by hand), so the engine can still tell which call a connection carries.
    """
    match = _BENCH_CALL.search(str(session.get("instructions") or ""))
    return int(match.group(1)) if match else None
