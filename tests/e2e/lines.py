"""What callers and agents say in the engine end-to-end tests, and the audio helpers for it."""

from __future__ import annotations

GREETING = "Thanks for calling Acme. How can I help you today?"
QUESTION = "what is the status of order a one two three four"
LONG = (
    "let me tell you about all of our services we offer plumbing heating and electrical work "
    "roofing painting and general repairs for homes and small businesses across the whole region "
    "and our team is available every day of the week"
)
PHRASES = [QUESTION, "stop please", "hello I would like to book an appointment tomorrow"]
"""What the fakes' recognisers may hear from the caller (their grammar)."""
NO_REALTIME = "ws://127.0.0.1:9/v1/realtime"
"""An OpenAI Realtime URL nothing listens on: tests of other engines never reach it."""


def silence(ms: int) -> bytes:
    """``ms`` of μ-law digital silence."""
    return b"\xff" * (8 * ms)
