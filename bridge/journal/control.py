"""The control plane's store: organizations, API keys, numbers, routing rules, credentials.

Their tables (:mod:`bridge.journal.models`) live in the journal's database and every read
and write here is scoped to an organization: a method takes ``org`` first and never returns a
row of another one. The only unscoped lookups are the ones that *find* the organization:
:meth:`ControlStore.key_by_hash` (an API request) and :meth:`ControlStore.number_by_e164` (a
carrier's webhook for a called number).

Read models are the ORM rows themselves, detached (``expire_on_commit=False``): plain attribute
access, no lazy loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.journal.ids import new_call_id
from bridge.journal.models import (
    SCOPES,
    ApiKey,
    Credential,
    Organization,
    PhoneNumber,
    RoutingRule,
    utcnow,
)
from bridge.journal.store import Conflict, JournalStore, NotFound
from bridge.secrets import SecretBox

__all__ = ["ControlStore", "open_credential"]


class ControlStore:
    """Organization-scoped reads and writes of the control plane's tables."""

    def __init__(self, journal: JournalStore) -> None:
        self._journal = journal

    # -- organizations and keys ----------------------------------------------------------------

    async def ensure_org(self, org: str, name: str | None = None) -> Organization:
        try:
            async with self._journal.transaction("ensure_org") as tx:
                row = await tx.session.get(Organization, org)
                if row is None:
                    row = Organization(id=org, name=name or org, created_at=utcnow())
                    tx.session.add(row)
                return row
        except Conflict:
            # Created concurrently (workers starting on a fresh journal): it exists now.
            async with self._journal.transaction("ensure_org") as tx:
                found = await tx.session.get(Organization, org)
            if found is None:
                raise
            return found

    async def list_orgs(self) -> list[Organization]:
        async with self._journal.transaction("list_orgs") as tx:
            return list(await tx.session.scalars(select(Organization).order_by(Organization.id)))

    async def create_key(
        self, org: str, *, name: str, scope: str, key_hash: str, last4: str, key_id: str = ""
    ) -> ApiKey:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        await self.ensure_org(org)
        row = ApiKey(
            id=key_id or new_call_id(),
            org_id=org,
            name=name,
            scope=scope,
            key_hash=key_hash,
            last4=last4,
            created_at=utcnow(),
        )
        async with self._journal.transaction("create_key") as tx:
            tx.session.add(row)
        return row

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The live (unrevoked) key with this hash, whatever its organization."""
        async with self._journal.transaction("key_by_hash") as tx:
            row: ApiKey | None = await tx.session.scalar(
                select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
            )
            return row

    async def count_keys(self) -> int:
        async with self._journal.transaction("count_keys") as tx:
            return int(await tx.session.scalar(select(func.count()).select_from(ApiKey)) or 0)

    async def list_keys(self, org: str) -> list[ApiKey]:
        async with self._journal.transaction("list_keys") as tx:
            query = select(ApiKey).where(ApiKey.org_id == org).order_by(ApiKey.id)
            return list(await tx.session.scalars(query))

    async def revoke_key(self, org: str, key_id: str) -> ApiKey:
        async with self._journal.transaction("revoke_key") as tx:
            row = await tx.session.get(ApiKey, key_id)
            if row is None or row.org_id != org:
                raise NotFound("API key not found", operation="revoke_key")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return row

    async def touch_key(self, key_id: str, when: datetime) -> None:
        async with self._journal.transaction("touch_key") as tx:
            await tx.session.execute(
                update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when)
            )

    # -- numbers -------------------------------------------------------------------------------

    async def list_numbers(self, org: str) -> list[PhoneNumber]:
        async with self._journal.transaction("list_numbers") as tx:
            query = select(PhoneNumber).where(PhoneNumber.org_id == org)
            return list(await tx.session.scalars(query.order_by(PhoneNumber.number)))

    async def add_number(self, org: str, **fields: Any) -> PhoneNumber:
        """Attach a number (raises :class:`~bridge.journal.store.Conflict` if it is taken)."""
        return await self._add(PhoneNumber, org, fields)

    async def get_number(self, org: str, number_id: str) -> PhoneNumber:
        return await self._get(PhoneNumber, org, number_id)

    async def update_number(self, org: str, number_id: str, **fields: Any) -> PhoneNumber:
        return await self._update(PhoneNumber, org, number_id, fields)

    async def delete_number(self, org: str, number_id: str) -> None:
        await self._delete(PhoneNumber, org, number_id)

    async def number_by_e164(self, number: str) -> PhoneNumber | None:
        """The attached number, whatever its organization (a carrier webhook finds its org)."""
        async with self._journal.transaction("number_by_e164") as tx:
            row: PhoneNumber | None = await tx.session.scalar(
                select(PhoneNumber).where(PhoneNumber.number == number)
            )
            return row

    async def org_number(self, org: str, number: str) -> PhoneNumber | None:
        async with self._journal.transaction("org_number") as tx:
            row: PhoneNumber | None = await tx.session.scalar(
                select(PhoneNumber).where(PhoneNumber.org_id == org, PhoneNumber.number == number)
            )
            return row

    # -- routing rules -------------------------------------------------------------------------

    async def list_rules(self, org: str, number: str | None = None) -> list[RoutingRule]:
        query = select(RoutingRule).where(RoutingRule.org_id == org)
        if number is not None:
            query = query.where(RoutingRule.number == number)
        query = query.order_by(RoutingRule.number, RoutingRule.priority, RoutingRule.id)
        async with self._journal.transaction("list_rules") as tx:
            return list(await tx.session.scalars(query))

    async def add_rule(self, org: str, **fields: Any) -> RoutingRule:
        return await self._add(RoutingRule, org, fields)

    async def get_rule(self, org: str, rule_id: str) -> RoutingRule:
        return await self._get(RoutingRule, org, rule_id)

    async def update_rule(self, org: str, rule_id: str, **fields: Any) -> RoutingRule:
        return await self._update(RoutingRule, org, rule_id, fields)

    async def delete_rule(self, org: str, rule_id: str) -> None:
        await self._delete(RoutingRule, org, rule_id)

    async def route(
        self, org: str, number: str, caller: str | None
    ) -> tuple[str, Mapping[str, Any]] | None:
        """Which agent answers ``number`` for ``caller`` and with what context: the first
        matching active rule (by priority), else the number's inbound agent; ``None``: nobody."""
        async with self._journal.transaction("route") as tx:
            rules = await tx.session.scalars(
                select(RoutingRule)
                .where(RoutingRule.org_id == org, RoutingRule.number == number)
                .order_by(RoutingRule.priority, RoutingRule.id)
            )
            for rule in rules:
                if rule.matches(caller):
                    return rule.agent, dict(rule.context or {})
            row = await tx.session.scalar(
                select(PhoneNumber).where(PhoneNumber.org_id == org, PhoneNumber.number == number)
            )
        if row is not None and row.inbound_agent:
            return row.inbound_agent, {}
        return None

    # -- credentials ---------------------------------------------------------------------------

    async def put_credential(
        self, org: str, provider: str, *, sealed: str, hints: Mapping[str, str]
    ) -> tuple[Credential, bool]:
        """Set the organization's credential for ``provider``; True if it is new."""
        await self.ensure_org(org)
        now = utcnow()
        async with self._journal.transaction("put_credential") as tx:
            row = await tx.session.scalar(
                select(Credential).where(Credential.org_id == org, Credential.provider == provider)
            )
            created = row is None
            if row is None:
                row = Credential(id=new_call_id(), org_id=org, provider=provider, created_at=now)
                tx.session.add(row)
            row.sealed = sealed
            row.hints = dict(hints)
            row.updated_at = now
            return row, created

    async def list_credentials(self, org: str) -> list[Credential]:
        async with self._journal.transaction("list_credentials") as tx:
            query = select(Credential).where(Credential.org_id == org)
            return list(await tx.session.scalars(query.order_by(Credential.provider)))

    async def get_credential(self, org: str, provider: str) -> Credential | None:
        async with self._journal.transaction("get_credential") as tx:
            row: Credential | None = await tx.session.scalar(
                select(Credential).where(Credential.org_id == org, Credential.provider == provider)
            )
            return row

    async def credential_fields(
        self, org: str, provider: str, box: SecretBox
    ) -> dict[str, str] | None:
        """``org``'s decrypted credential for ``provider``, or ``None`` if it stored none."""
        row = await self.get_credential(org, provider)
        return None if row is None else open_credential(row, box)

    async def delete_credential(self, org: str, provider: str) -> None:
        async with self._journal.transaction("delete_credential") as tx:
            result = await tx.session.execute(
                delete(Credential)
                .where(Credential.org_id == org, Credential.provider == provider)
                .returning(Credential.id)
            )
            if result.first() is None:
                raise NotFound("credential not found", operation="delete_credential")

    # -- the organization-owned rows (numbers, rules): one way to add, get, change, delete ------

    async def _add(self, model: type[_Owned], org: str, fields: Mapping[str, Any]) -> _Owned:
        await self.ensure_org(org)
        now = utcnow()
        row = model(id=new_call_id(), org_id=org, created_at=now, updated_at=now, **fields)
        async with self._journal.transaction(f"add_{model.__tablename__}") as tx:
            tx.session.add(row)
        return row

    async def _get(self, model: type[_Owned], org: str, row_id: str) -> _Owned:
        async with self._journal.transaction(f"get_{model.__tablename__}") as tx:
            return await _owned(tx.session, model, org, row_id)

    async def _update(
        self, model: type[_Owned], org: str, row_id: str, fields: Mapping[str, Any]
    ) -> _Owned:
        async with self._journal.transaction(f"update_{model.__tablename__}") as tx:
            row = await _owned(tx.session, model, org, row_id)
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
            return row

    async def _delete(self, model: type[_Owned], org: str, row_id: str) -> None:
        async with self._journal.transaction(f"delete_{model.__tablename__}") as tx:
            await tx.session.delete(await _owned(tx.session, model, org, row_id))


_Owned = TypeVar("_Owned", PhoneNumber, RoutingRule)
_WHAT = {"numbers": "number", "routing_rules": "routing rule"}


async def _owned(session: AsyncSession, model: type[_Owned], org: str, row_id: str) -> _Owned:
    row = await session.get(model, row_id)
    if row is None or row.org_id != org:
        # Another organization's row is as unknown as a missing one.
        what = _WHAT[model.__tablename__]
        raise NotFound(f"{what} not found", operation=f"get_{model.__tablename__}")
    return row


def open_credential(row: Credential, box: SecretBox) -> dict[str, str]:
    """A stored credential's fields, decrypted (server side only)."""
    fields: dict[str, str] = orjson.loads(box.open(row.sealed))
    return fields
