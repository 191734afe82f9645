"""Tools: signed webhook dispatch of the functions an agent may call."""

from bridge.tools.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signed_headers, verify
from bridge.tools.webhook import MAX_REPLY_BYTES, ToolDispatcher, ToolOutcome

__all__ = [
    "MAX_REPLY_BYTES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ToolDispatcher",
    "ToolOutcome",
    "sign",
    "signed_headers",
    "verify",
]
