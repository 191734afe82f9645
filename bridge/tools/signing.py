"""Signing of tool-webhook requests, and the check a receiver runs.

The scheme (version ``v1``)::

    X-Callbridge-Timestamp: <unix time in whole seconds, decimal>
    X-Callbridge-Signature: v1=<hex(HMAC-SHA256(key=secret, msg=f"{timestamp}.".encode() + body))>

``body`` is the raw request body exactly as sent (callbridge sends UTF-8 JSON); the secret is
UTF-8 encoded. The signature header may carry several comma-separated values
(``v1=<hex>,v1=<hex>``) so a sender can sign with an old and a new secret while the receivers
move over; a receiver accepts the request if any ``v1`` value matches, and ignores values of
other versions. The timestamp is bound into the signature so a captured request cannot be
replayed once it falls outside the receiver's tolerance window.

Pure functions: no I/O, and the clock is an argument.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Callbridge-Timestamp"
SIGNATURE_HEADER = "X-Callbridge-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300

_MAX_TIMESTAMP_DIGITS = 15  # far beyond any real clock; keeps int() away from huge input


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}."`` followed by ``body``, keyed by ``secret``."""
    if not secret:
        raise ValueError("an empty secret cannot sign")
    message = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Callbridge-Signature`` header value, ``v1=<hex>``."""
    return f"{SCHEME}={signature(secret, timestamp, body)}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Both signature headers for a request with this body, sent at ``timestamp``."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(
    secret: str,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    *,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> bool:
    """Whether the request was signed with ``secret`` within ``tolerance_s`` of ``now``.

    Rejects a malformed or stale/future timestamp, and a signature header without a matching
    ``v1`` value. Candidate signatures are compared in constant time, every one of them.
    """
    if not secret:
        return False
    text = timestamp_header.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_TIMESTAMP_DIGITS):
        return False
    timestamp = int(text)
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).encode("ascii")
    matched = False
    for part in signature_header.split(","):
        scheme, sep, value = part.strip().partition("=")
        if sep and scheme == SCHEME:
            candidate = value.strip().lower().encode("utf-8", "replace")
            matched |= hmac.compare_digest(expected, candidate)
    return matched
