"""Built-in tools the bridge itself carries out (no webhook): transfer and keypad tones.

They are offered to the model like the agent's own tools when the agent enables them —
``transfer_call`` when its ``[transfer]`` table names targets, ``send_dtmf`` with
``send_dtmf = true``. The model picks a transfer target *by name*: it can never dial a number of
its own choosing (a prompt injection must not become a toll call).
"""

from __future__ import annotations

import re

from bridge.agents.model import Agent, ToolSpec

__all__ = [
    "BUILTIN_TOOLS",
    "DTMF_DIGITS",
    "SEND_DTMF",
    "TOOL_NAME",
    "TRANSFER_CALL",
    "builtin_tools",
    "is_transfer_target",
]

TRANSFER_CALL = "transfer_call"
SEND_DTMF = "send_dtmf"
BUILTIN_TOOLS = frozenset({TRANSFER_CALL, SEND_DTMF})
DTMF_DIGITS = re.compile(r"[0-9*#A-Dw]{1,64}")
"""Keys a phone can send (``w``: a half-second pause, as Twilio's ``sendDigits`` has it)."""
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What function-calling APIs accept as a tool's name (also a transfer target's)."""
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SIP = re.compile(r"sips?:[^\s<>\"]{3,200}")


def is_transfer_target(target: str) -> bool:
    """An E.164 number or a SIP URI."""
    return bool(_E164.fullmatch(target) or _SIP.fullmatch(target))


def builtin_tools(agent: Agent) -> tuple[ToolSpec, ...]:
    tools: list[ToolSpec] = []
    if agent.transfer_targets:
        names = sorted(agent.transfer_targets)
        tools.append(
            ToolSpec(
                TRANSFER_CALL,
                "Transfer the caller to a person or department, ending your part of the call. "
                "Tell the caller first that you are transferring them. Targets: "
                + ", ".join(names)
                + ".",
                {
                    "type": "object",
                    "properties": {
                        "target": {"type": "string", "enum": names, "description": "Where to."}
                    },
                    "required": ["target"],
                },
            )
        )
    if agent.dtmf_tool:
        tools.append(
            ToolSpec(
                SEND_DTMF,
                "Press keys on the phone keypad (to navigate an automated phone menu). "
                "Digits 0-9, * and #; w waits half a second.",
                {
                    "type": "object",
                    "properties": {"digits": {"type": "string", "pattern": DTMF_DIGITS.pattern}},
                    "required": ["digits"],
                },
            )
        )
    return tuple(tools)
