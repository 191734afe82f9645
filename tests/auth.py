"""API keys for tests: the suite's secret key, and keys made through the product's own path."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet

from bridge.api.keys import issue_key

SECRET_KEY = Fernet.generate_key().decode("ascii")
"""Settings(secret_keys=(SECRET_KEY,)): tests never create a key file in the working tree."""


async def api_key(app: Any, org: str = "default", scope: str = "admin", name: str = "test") -> str:
    """A new API key of ``org`` with ``scope``, created in the running app's database."""
    _, key = await issue_key(app.state.control, org, name=name, scope=scope)
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def authorize(app: Any, http: Any, org: str = "default", scope: str = "admin") -> str:
    """Give ``http`` (an httpx client) a fresh key of ``org``; return the key."""
    key = await api_key(app, org, scope)
    http.headers.update(bearer(key))
    return key
