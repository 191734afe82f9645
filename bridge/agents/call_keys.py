"""The keys of an agent file about how its calls go: the greeting delay and silence checks,
what to do on an answering machine, where it may transfer a call. Pure: no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypedDict

from bridge.agents.builtins import SEND_DTMF, TOOL_NAME, TRANSFER_CALL, is_transfer_target
from bridge.agents.fields import Fields, choice
from bridge.agents.model import (
    MACHINE_DETECTION,
    VOICEMAIL_ACTIONS,
    Agent,
    ToolSpec,
    VoicemailSpec,
)

__all__ = ["Behaviour", "read_behaviour", "read_transfer", "read_voicemail", "tool_names"]

logger = logging.getLogger(__name__)

_VOICEMAIL_KEYS = frozenset({"detect", "action", "message"})


class Behaviour(TypedDict):
    """The :class:`~bridge.agents.model.Agent` fields of the greeting delay and silence checks."""

    initial_message_delay_s: float
    idle_time_seconds: float | None
    max_idle_check_count: int
    idle_message: str


def read_behaviour(fields: Fields, engine: str) -> Behaviour:
    base = Agent(name="-")
    delay = fields.number("initial_message_delay_s", allow_zero=True, high=60.0)
    idle = fields.number("idle_time_seconds")
    checks = fields.table.get("max_idle_check_count", base.max_idle_check_count)
    if isinstance(checks, bool) or not isinstance(checks, int) or checks < 0:
        raise fields.error(
            "max_idle_check_count", f"must be an integer of at least 0, got {checks!r}"
        )
    message = fields.string("idle_message") or base.idle_message
    fields.template("idle_message", message)
    # An ElevenLabs conversation says its first message at once and has no "say this" message:
    # both are ElevenLabs agent settings (its first message, its turn timeout).
    if engine == "elevenlabs":
        for key in ("initial_message_delay_s", "idle_time_seconds"):
            if fields.table.get(key):
                raise fields.error(
                    key, "not supported by engine elevenlabs: set it in the ElevenLabs agent"
                )
    if engine == "openai_realtime" and fields.table.get("temperature") is not None:
        logger.warning(
            "%s: temperature: OpenAI Realtime (GA) takes no temperature; it is not sent",
            fields.path,
        )
    return {
        "initial_message_delay_s": base.initial_message_delay_s if delay is None else delay,
        "idle_time_seconds": idle,
        "max_idle_check_count": checks,
        "idle_message": message,
    }


def tool_names(tools: tuple[ToolSpec, ...], raw: Mapping[str, Any]) -> set[str]:
    """The tools a ``[dialog]`` may call: the agent's own and the built-ins it enables."""
    names = {tool.name for tool in tools}
    if "transfer" in raw:
        names.add(TRANSFER_CALL)
    if raw.get("send_dtmf") is True:
        names.add(SEND_DTMF)
    return names


def read_transfer(fields: Fields) -> dict[str, str]:
    table = fields.table_of("transfer")
    if table is None:
        return {}
    transfer = Fields(fields.path, table, "transfer.")
    transfer.reject_unknown(frozenset({"targets"}))
    targets = transfer.table_of("targets") or {}
    out: dict[str, str] = {}
    for name, target in targets.items():
        if not TOOL_NAME.fullmatch(name):
            raise transfer.error(f"targets.{name}", "target names are letters, digits, _ and -")
        if not isinstance(target, str) or not is_transfer_target(target):
            raise transfer.error(
                f"targets.{name}", f"must be an E.164 number or a SIP URI, got {target!r}"
            )
        out[name] = target
    if not out:
        raise transfer.error("targets", "must name at least one target")
    return out


def read_voicemail(fields: Fields) -> VoicemailSpec | None:
    table = fields.table_of("voicemail")
    if table is None:
        return None
    vm = Fields(fields.path, table, "voicemail.")
    vm.reject_unknown(_VOICEMAIL_KEYS)
    base = VoicemailSpec()
    detect = choice(vm, "detect", MACHINE_DETECTION) or base.detect
    action = choice(vm, "action", VOICEMAIL_ACTIONS) or base.action
    message = vm.string("message")
    if message is not None:
        vm.template("message", message)
    if action == "leave_message" and message is None:
        raise vm.error("message", 'is required for action = "leave_message"')
    return VoicemailSpec(detect=detect, action=action, message=message)
