"""GA session configuration of the fake OpenAI Realtime server: defaults and ``session.update``.

Pure functions over plain dicts in the GA shape (``audio.input.format``,
``audio.input.turn_detection``, ``audio.output.voice`` …). Merging follows the documented rule:
only fields present in the update change; ``audio.input``/``audio.output`` merge key by key,
every other field (``format``, ``turn_detection``, ``tools`` …) is replaced whole, with the
server's defaults filled in (as ``session.updated`` shows them).
"""

from __future__ import annotations

import copy
import time
from typing import Any

__all__ = ["check_update", "default_session_config", "merge_session"]

Config = dict[str, Any]

SERVER_VAD_DEFAULTS: Config = {
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
SEMANTIC_VAD_DEFAULTS: Config = {
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}


def default_session_config(session_id: str, model: str) -> Config:
    """What a fresh GA session looks like (``session.created``)."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "You are a helpful, witty, and friendly AI.",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": int(time.time()) + 3600,
        "include": None,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {"type": "server_vad", **SERVER_VAD_DEFAULTS},
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "marin",
                "speed": 1.0,
            },
        },
    }


def check_update(
    config: Config, update: Config, *, audio_produced: bool
) -> tuple[str, str, str] | None:
    """Semantic checks the schema cannot express: ``(code, message, param)`` or ``None``."""
    if update.get("type") != "realtime":
        return (
            "invalid_value",
            "This session is a realtime session; session.type must be 'realtime'.",
            "session.type",
        )
    modalities = update.get("output_modalities")
    if modalities is not None and len(modalities) != 1:
        return (
            "invalid_value",
            "output_modalities must be ['audio'] or ['text'], not both.",
            "session.output_modalities",
        )
    voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
    if voice is not None and voice != config["audio"]["output"]["voice"] and audio_produced:
        return (
            "cannot_update_voice",
            "Cannot update a conversation's voice if assistant audio is present.",
            "session.audio.output.voice",
        )
    return None


def _format(fmt: Config) -> Config:
    if fmt.get("type", "audio/pcm") == "audio/pcm":
        return {"type": "audio/pcm", "rate": 24000}
    return {"type": fmt["type"]}


def _turn_detection(td: Config | None) -> Config | None:
    if td is None:
        return None
    defaults = SERVER_VAD_DEFAULTS if td["type"] == "server_vad" else SEMANTIC_VAD_DEFAULTS
    return {"type": td["type"], **defaults, **{k: v for k, v in td.items() if k != "type"}}


def merge_session(config: Config, update: Config) -> Config:
    """The effective config after ``update`` (a validated ``session.update`` payload)."""
    merged = copy.deepcopy(config)
    for key, value in update.items():
        if key != "audio":
            merged[key] = copy.deepcopy(value)
            continue
        for side in ("input", "output"):
            part = (value or {}).get(side)
            if not part:
                continue
            target = merged["audio"][side]
            for k, v in part.items():
                if k == "format":
                    target[k] = _format(v)
                elif k == "turn_detection":
                    target[k] = _turn_detection(v)
                else:
                    target[k] = copy.deepcopy(v)
    return merged
