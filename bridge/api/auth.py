"""API keys: who is asking (``Authorization: Bearer cb_…``), for which organization, with what
scope, and how often.

Scopes nest: ``admin`` ⊃ ``write`` ⊃ ``read``. A route declares the least it needs
(``Depends(require("write"))``) and gets the caller's :class:`Principal`, whose ``org`` scopes
every query it makes. Errors, always ``{"detail": …}``:

* 401 — no key, not a callbridge key, unknown or revoked (with ``WWW-Authenticate: Bearer``);
* 403 — the key's scope is below the route's;
* 429 — the key made more than ``rate_limit_per_minute`` requests (a token bucket per key and
  worker, refilled continuously), with ``Retry-After``.

A verified key is remembered for :data:`KEY_CACHE_S` (no database read per request); revoking a
key through this worker forgets it at once, other workers within that time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from bridge.journal.control import ControlStore
from bridge.journal.models import SCOPES, scope_includes
from bridge.journal.store import JournalError
from bridge.secrets import hash_api_key, looks_like_api_key

__all__ = ["KEY_CACHE_S", "Admin", "Authenticator", "Principal", "Reader", "Writer", "require"]

log = logging.getLogger(__name__)

KEY_CACHE_S = 30.0
TOUCH_EVERY_S = 60.0
"""``last_used_at`` is written at most this often per key."""

_bearer = HTTPBearer(auto_error=False, description="An API key: `callbridge keys create`")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request: which key, which organization, which scope."""

    key_id: str
    org: str
    scope: str

    def allows(self, scope: str) -> bool:
        return scope_includes(self.scope, scope)


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class Authenticator:
    """Checks keys against the store, caches them, and rate-limits each key."""

    def __init__(
        self,
        control: ControlStore,
        *,
        rate_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._control = control
        self._rate = max(1, rate_per_minute)
        self._clock = clock
        self._cache: dict[str, tuple[Principal, float]] = {}  # key hash → (principal, until)
        self._buckets: dict[str, _Bucket] = {}
        self._touched: dict[str, float] = {}

    async def authenticate(self, key: str) -> Principal:
        if not looks_like_api_key(key):
            raise _unauthorized("not a callbridge API key")
        digest = hash_api_key(key)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            principal = cached[0]
        else:
            try:
                row = await self._control.key_by_hash(digest)
            except JournalError as exc:
                raise HTTPException(503, detail=exc.message) from exc
            if row is None:
                self._cache.pop(digest, None)
                raise _unauthorized("unknown or revoked API key")
            principal = Principal(row.id, row.org_id, row.scope)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (principal, now + KEY_CACHE_S)
        self._limit(principal, now)
        await self._touch(principal, now)
        return principal

    def forget(self, key_id: str) -> None:
        """A key was revoked: stop accepting it here now."""
        for digest, (principal, _) in list(self._cache.items()):
            if principal.key_id == key_id:
                del self._cache[digest]

    def _limit(self, principal: Principal, now: float) -> None:
        capacity = float(self._rate)
        bucket = self._buckets.get(principal.key_id)
        if bucket is None:
            bucket = self._buckets[principal.key_id] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * capacity / 60.0)
        bucket.updated = now
        if bucket.tokens < 1.0:
            retry = max(1, round((1.0 - bucket.tokens) * 60.0 / capacity + 0.5))
            raise HTTPException(
                429,
                detail=f"rate limit: {self._rate} requests per minute per API key",
                headers={"Retry-After": str(retry)},
            )
        bucket.tokens -= 1.0

    async def _touch(self, principal: Principal, now: float) -> None:
        last = self._touched.get(principal.key_id)
        if last is not None and now - last < TOUCH_EVERY_S:
            return
        self._touched[principal.key_id] = now
        try:
            await self._control.touch_key(principal.key_id, datetime.now(UTC))
        except JournalError as exc:  # bookkeeping only: never fail the request for it
            log.warning("API key %s: last use not recorded: %s", principal.key_id, exc.message)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def get_authenticator(request: HTTPConnection) -> Authenticator:
    auth = getattr(request.app.state, "auth", None)
    if not isinstance(auth, Authenticator):
        raise RuntimeError("app.state.auth is not set to an Authenticator")
    return auth


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the request's :class:`Principal`, which must have ``scope``."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise _unauthorized("missing API key (Authorization: Bearer …)")
        principal = await get_authenticator(request).authenticate(credentials.credentials)
        if not principal.allows(scope):
            raise HTTPException(
                403, detail=f"this API key's scope is {principal.scope}; {scope} is needed"
            )
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
