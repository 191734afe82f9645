"""Secrets at rest and signed tokens: API keys, provider credentials, expiring URLs.

* **API keys** are ``cb_`` + 40 URL-safe characters (240 random bits). Only their SHA-256 is
  stored. A slow password hash (bcrypt, argon2) protects *guessable* secrets; a 240-bit random
  key cannot be guessed, so a fast hash loses nothing and lets the server find a key by its hash
  with one indexed lookup instead of trying every stored hash.
* **Provider credentials** (Twilio, OpenAI, ElevenLabs, Deepgram) are encrypted with Fernet
  (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under the server's secret key. Several keys
  may be configured, newest first: the first encrypts, any decrypts (:class:`MultiFernet`), so a
  key can be rotated without losing what the old one sealed.
* **Signed tokens** (``<payload>.<expiry>.<mac>``) authorise one thing for a while without a
  database row: a recording URL that can sit in an ``<audio>`` tag, the media stream of a call
  the Twilio webhook answered. Their MAC key is derived from the same secret key (HKDF), never
  the key itself.

Pure functions and objects: no I/O, and the clock is an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bridge.errors import ConfigError

__all__ = [
    "API_KEY_PREFIX",
    "SecretBox",
    "SecretKeyError",
    "hash_api_key",
    "last4",
    "new_api_key",
]

API_KEY_PREFIX = "cb_"
_API_KEY_CHARS = 40


class SecretKeyError(ConfigError):
    """The configured secret key is not a Fernet key, or a sealed value cannot be opened."""


def new_api_key() -> str:
    """A fresh API key (shown once; only :func:`hash_api_key` of it is stored)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(30)[:_API_KEY_CHARS]


def hash_api_key(key: str) -> str:
    """The stored form of an API key: hex SHA-256."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_api_key(key: str) -> bool:
    return key.startswith(API_KEY_PREFIX) and len(key) == len(API_KEY_PREFIX) + _API_KEY_CHARS


def last4(value: str) -> str:
    """What the API shows of a secret: its last four characters, never more than half of it."""
    return value[-4:] if len(value) >= 8 else ""


class SecretBox:
    """Encrypts credentials and signs tokens with the server's secret key(s)."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretKeyError("no secret key configured")
        try:
            fernets = [Fernet(key.strip().encode("ascii")) for key in keys]
        except (ValueError, UnicodeEncodeError):
            raise SecretKeyError(
                "a secret key must be 32 url-safe base64-encoded bytes "
                "(make one with: callbridge keys secret)"
            ) from None
        self._fernet = MultiFernet(fernets)
        # The MAC key of signed tokens: derived from the newest key, so rotating the secret key
        # also rotates it (tokens are short-lived; old ones simply expire).
        raw = base64.urlsafe_b64decode(keys[0].strip())
        self._mac_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"callbridge token v1"
        ).derive(raw)

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode("ascii")

    def seal(self, plaintext: bytes) -> str:
        return self._fernet.encrypt(plaintext).decode("ascii")

    def open(self, sealed: str) -> bytes:
        try:
            return self._fernet.decrypt(sealed.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SecretKeyError(
                "a stored credential cannot be decrypted with the configured secret key(s)"
            ) from None

    def sign(self, purpose: str, payload: str, expires_at: int) -> str:
        """A token for ``payload`` (no dots) valid for ``purpose`` until ``expires_at`` (unix s)."""
        if "." in payload:
            raise ValueError("a token payload cannot contain '.'")
        mac = self._mac(purpose, payload, expires_at)
        return f"{payload}.{expires_at}.{mac}"

    def verify(self, purpose: str, token: str, now: float) -> str | None:
        """The payload of a valid, unexpired ``token`` for ``purpose``; ``None`` otherwise."""
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
            return None
        payload, expiry, mac = parts
        expires_at = int(expiry)
        expected = self._mac(purpose, payload, expires_at).encode()
        if not hmac.compare_digest(mac.encode("utf-8", "replace"), expected):
            return None
        return payload if now < expires_at else None

    def _mac(self, purpose: str, payload: str, expires_at: int) -> str:
        message = f"{purpose}\n{payload}\n{expires_at}".encode()
        digest = hmac.new(self._mac_key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:20]).decode("ascii").rstrip("=")
