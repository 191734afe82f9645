"""Is what a target sent the engine valid GA Realtime? Checked against the ``openai`` SDK's types.

The fake engine keeps the first client event of each type it got (audio elided); this validates
each one against ``openai.types.realtime.RealtimeClientEvent`` and lists what does not fit:
unknown event types, fields the GA model does not have (``model_extra``, at any depth), and
validation errors. Needs ``openai`` (a dev dependency); without it the check says so.
"""

from __future__ import annotations

import typing
from typing import Any

__all__ = ["check_client_events"]


def _extras(model: Any, path: str = "") -> list[str]:
    """Dotted paths of every field a pydantic model (tree) accepted but does not declare."""
    from pydantic import BaseModel

    found = [f"{path}{name}" for name in sorted(model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                found += _extras(item, f"{path}{name}.")
    return found


def check_client_events(samples: dict[str, Any]) -> dict[str, Any]:
    """Per event type: ``"ok"`` or what is wrong with it."""
    try:
        realtime = __import__("openai.types.realtime", fromlist=["RealtimeClientEvent"])
        from pydantic import TypeAdapter, ValidationError
    except ImportError:
        return {"error": "openai is not installed: pip install 'openai[realtime]'"}
    union = realtime.RealtimeClientEvent
    members = typing.get_args(typing.get_args(union)[0]) or typing.get_args(union)
    by_type = {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in members}
    out: dict[str, Any] = {}
    for kind, sample in sorted(samples.items()):
        model = by_type.get(kind)
        if model is None:
            out[kind] = "not a GA client event"
            continue
        event = dict(sample)
        if kind == "input_audio_buffer.append":
            event["audio"] = ""
        try:
            parsed = TypeAdapter(model).validate_python(event)
        except ValidationError as exc:
            out[kind] = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            continue
        extras = _extras(parsed)
        out[kind] = {"fields not in GA": extras} if extras else "ok"
    return out
