"""The control plane's store, run against SQLite and PostgreSQL alike (see conftest.py).

Every method is scoped to an organization: another organization's row is as unknown as a
missing one. The unscoped lookups (``key_by_hash``, ``number_by_e164``) find the organization.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.journal.control import ControlStore
from bridge.journal.ids import new_call_id
from bridge.journal.models import DEFAULT_ORG
from bridge.journal.store import Conflict, JournalStore, NotFound
from bridge.secrets import hash_api_key, new_api_key
from tests.journal.conftest import sqlite_store

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
ACME_MAIN = "+15550001000"
ACME_SALES = "+15550001001"
GLOBEX_MAIN = "+15550002000"


@pytest.fixture
def control(store: JournalStore) -> ControlStore:
    return ControlStore(store)


async def _key(control: ControlStore, org: str, scope: str = "read") -> tuple[str, str]:
    """A new key of ``org``: its id and the key itself."""
    key = new_api_key()
    row = await control.create_key(
        org, name=f"{org}-{scope}", scope=scope, key_hash=hash_api_key(key), last4=key[-4:]
    )
    return row.id, key


# --- organizations and keys ----------------------------------------------------------------


async def test_ensure_org_is_idempotent(control: ControlStore) -> None:
    first = await control.ensure_org("acme", "Acme Corp")
    again = await control.ensure_org("acme", "Another name")
    await control.ensure_org(DEFAULT_ORG)

    assert (first.id, first.name) == ("acme", "Acme Corp")
    assert (again.id, again.name) == ("acme", "Acme Corp")  # the first name stays
    orgs = await control.list_orgs()
    assert [(org.id, org.name) for org in orgs] == [("acme", "Acme Corp"), ("default", "default")]


async def test_ensure_org_is_safe_when_raced(control: ControlStore) -> None:
    # Workers starting on a fresh journal all ensure the default organization at once.
    for attempt in range(5):
        org = f"race-{attempt}"
        rows = await asyncio.gather(*(control.ensure_org(org) for _ in range(4)))
        assert {row.id for row in rows} == {org}
    assert len(await control.list_orgs()) == 5


async def test_keys_are_found_by_hash_until_revoked(control: ControlStore) -> None:
    assert await control.count_keys() == 0
    key_id, key = await _key(control, "acme", "write")

    row = await control.key_by_hash(hash_api_key(key))
    assert row is not None
    assert (row.id, row.org_id, row.scope, row.last4) == (key_id, "acme", "write", key[-4:])
    assert row.revoked_at is None
    assert row.allows("read") and row.allows("write") and not row.allows("admin")
    assert await control.key_by_hash(hash_api_key(new_api_key())) is None
    assert [org.id for org in await control.list_orgs()] == ["acme"]  # created with the key

    revoked = await control.revoke_key("acme", key_id)
    assert revoked.revoked_at is not None
    assert await control.key_by_hash(hash_api_key(key)) is None
    # Revoking twice keeps the first time; a revoked key still counts (and is still listed).
    again = await control.revoke_key("acme", key_id)
    assert again.revoked_at == revoked.revoked_at
    assert await control.count_keys() == 1
    assert [k.id for k in await control.list_keys("acme")] == [key_id]


async def test_create_key_refuses_unknown_scopes_and_duplicate_hashes(
    control: ControlStore,
) -> None:
    with pytest.raises(ValueError, match="scope"):
        await control.create_key("acme", name="x", scope="root", key_hash="0" * 64, last4="abcd")
    await control.create_key("acme", name="x", scope="read", key_hash="1" * 64, last4="abcd")
    with pytest.raises(Conflict):
        await control.create_key("globex", name="y", scope="read", key_hash="1" * 64, last4="ab")
    assert await control.count_keys() == 1


async def test_keys_are_listed_and_revoked_per_organization(control: ControlStore) -> None:
    acme_1, _ = await _key(control, "acme")
    acme_2, _ = await _key(control, "acme", "admin")
    globex_1, globex_key = await _key(control, "globex")

    assert [k.id for k in await control.list_keys("acme")] == sorted([acme_1, acme_2])
    assert [k.id for k in await control.list_keys("globex")] == [globex_1]
    assert await control.list_keys("initech") == []
    assert await control.count_keys() == 3

    with pytest.raises(NotFound):
        await control.revoke_key("acme", globex_1)
    with pytest.raises(NotFound):
        await control.revoke_key("acme", new_call_id())
    assert await control.key_by_hash(hash_api_key(globex_key)) is not None  # untouched


async def test_touch_key_records_the_last_use(control: ControlStore) -> None:
    key_id, key = await _key(control, "acme")
    await control.touch_key(key_id, T0)
    row = await control.key_by_hash(hash_api_key(key))
    assert row is not None and row.last_used_at == T0


# --- numbers -------------------------------------------------------------------------------


async def test_number_lifecycle(control: ControlStore) -> None:
    added = await control.add_number(
        "acme", number=ACME_SALES, provider="twilio", label="Sales", inbound_agent="sales-bot"
    )
    main = await control.add_number("acme", number=ACME_MAIN, provider="twilio")
    assert added.org_id == "acme" and added.active is True and added.outbound_only is False
    assert (main.label, main.inbound_agent, main.provider_sid) == (None, None, None)

    listed = await control.list_numbers("acme")
    assert [n.number for n in listed] == [ACME_MAIN, ACME_SALES]  # ordered by number

    got = await control.get_number("acme", added.id)
    assert (got.id, got.number, got.label, got.inbound_agent) == (
        added.id,
        ACME_SALES,
        "Sales",
        "sales-bot",
    )

    changed = await control.update_number(
        "acme", added.id, label="Sales (EU)", active=False, outbound_only=True, inbound_agent=None
    )
    assert (changed.label, changed.active, changed.outbound_only, changed.inbound_agent) == (
        "Sales (EU)",
        False,
        True,
        None,
    )
    assert changed.updated_at >= added.updated_at
    reread = await control.get_number("acme", added.id)
    assert (reread.label, reread.active, reread.outbound_only) == ("Sales (EU)", False, True)

    await control.delete_number("acme", added.id)
    with pytest.raises(NotFound):
        await control.get_number("acme", added.id)
    with pytest.raises(NotFound):
        await control.delete_number("acme", added.id)
    assert [n.number for n in await control.list_numbers("acme")] == [ACME_MAIN]


async def test_a_number_belongs_to_one_organization(control: ControlStore) -> None:
    acme = await control.add_number("acme", number=ACME_MAIN, provider="twilio")
    with pytest.raises(Conflict):
        await control.add_number("globex", number=ACME_MAIN, provider="twilio")
    with pytest.raises(Conflict):
        await control.add_number("acme", number=ACME_MAIN, provider="twilio")
    assert await control.list_numbers("globex") == []
    assert [n.id for n in await control.list_numbers("acme")] == [acme.id]

    # Once detached, another organization may attach it.
    await control.delete_number("acme", acme.id)
    globex = await control.add_number("globex", number=ACME_MAIN, provider="twilio")
    assert globex.org_id == "globex"


async def test_another_organizations_number_is_not_found(control: ControlStore) -> None:
    acme = await control.add_number("acme", number=ACME_MAIN, provider="twilio", label="A")
    await control.add_number("globex", number=GLOBEX_MAIN, provider="twilio")

    with pytest.raises(NotFound):
        await control.get_number("globex", acme.id)
    with pytest.raises(NotFound):
        await control.update_number("globex", acme.id, label="stolen")
    with pytest.raises(NotFound):
        await control.delete_number("globex", acme.id)
    assert [n.number for n in await control.list_numbers("globex")] == [GLOBEX_MAIN]

    untouched = await control.get_number("acme", acme.id)
    assert untouched.label == "A"


async def test_number_by_e164_finds_any_organization_org_number_only_its_own(
    control: ControlStore,
) -> None:
    await control.add_number("acme", number=ACME_MAIN, provider="twilio")
    await control.add_number("globex", number=GLOBEX_MAIN, provider="twilio")

    found = await control.number_by_e164(GLOBEX_MAIN)
    assert found is not None and found.org_id == "globex"
    assert await control.number_by_e164("+15559999999") is None

    own = await control.org_number("acme", ACME_MAIN)
    assert own is not None and own.number == ACME_MAIN
    assert await control.org_number("acme", GLOBEX_MAIN) is None
    assert await control.org_number("globex", ACME_MAIN) is None


# --- routing rules -------------------------------------------------------------------------


async def test_route_picks_the_first_active_matching_rule(control: ControlStore) -> None:
    await control.add_number("acme", number=ACME_MAIN, provider="twilio", inbound_agent="front")
    await control.add_rule("acme", number=ACME_MAIN, agent="general", priority=100)
    await control.add_rule(
        "acme",
        number=ACME_MAIN,
        agent="uk-desk",
        caller_prefix="+44",
        priority=10,
        context={"region": "uk"},
    )
    await control.add_rule("acme", number=ACME_MAIN, agent="vip", priority=1, active=False)
    await control.add_rule("acme", number=ACME_MAIN, agent="later", priority=200)

    assert await control.route("acme", ACME_MAIN, "+447700900123") == ("uk-desk", {"region": "uk"})
    # Not a UK caller: the next rule by priority; the inactive one is skipped.
    assert await control.route("acme", ACME_MAIN, "+15551234567") == ("general", {})
    assert await control.route("acme", ACME_MAIN, None) == ("general", {})


async def test_route_with_equal_priorities_is_stable(control: ControlStore) -> None:
    await control.add_number("acme", number=ACME_MAIN, provider="twilio")
    first = await control.add_rule("acme", number=ACME_MAIN, agent="one", priority=5)
    second = await control.add_rule("acme", number=ACME_MAIN, agent="two", priority=5)
    winner = min([first, second], key=lambda rule: rule.id)
    assert await control.route("acme", ACME_MAIN, "+15551234567") == (winner.agent, {})


async def test_route_falls_back_to_the_numbers_inbound_agent(control: ControlStore) -> None:
    await control.add_number("acme", number=ACME_MAIN, provider="twilio", inbound_agent="front")
    await control.add_rule("acme", number=ACME_MAIN, agent="uk-desk", caller_prefix="+44")
    await control.add_rule("acme", number=ACME_MAIN, agent="off", active=False)

    assert await control.route("acme", ACME_MAIN, "+15551234567") == ("front", {})
    assert await control.route("acme", ACME_MAIN, None) == ("front", {})  # prefix needs a caller


async def test_route_without_rules_or_inbound_agent_is_none(control: ControlStore) -> None:
    assert await control.route("acme", ACME_MAIN, "+15551234567") is None  # unknown number
    await control.add_number("acme", number=ACME_MAIN, provider="twilio")
    assert await control.route("acme", ACME_MAIN, "+15551234567") is None
    await control.add_rule("acme", number=ACME_MAIN, agent="uk-desk", caller_prefix="+44")
    assert await control.route("acme", ACME_MAIN, "+15551234567") is None


async def test_route_never_uses_another_organizations_rules(control: ControlStore) -> None:
    await control.add_number("acme", number=ACME_MAIN, provider="twilio")
    # globex has a rule (and its own inbound agent) for the same number string: not acme's.
    await control.add_rule("globex", number=ACME_MAIN, agent="globex-bot", priority=0)
    assert await control.route("acme", ACME_MAIN, "+15551234567") is None
    assert await control.route("globex", ACME_MAIN, "+15551234567") == ("globex-bot", {})

    await control.add_number(
        "globex", number=GLOBEX_MAIN, provider="twilio", inbound_agent="globex-bot"
    )
    assert await control.route("acme", GLOBEX_MAIN, None) is None


async def test_rules_are_scoped_listed_and_filtered(control: ControlStore) -> None:
    main = await control.add_rule("acme", number=ACME_MAIN, agent="a", priority=20)
    sales = await control.add_rule("acme", number=ACME_SALES, agent="b", priority=10)
    early = await control.add_rule("acme", number=ACME_MAIN, agent="c", priority=5)
    theirs = await control.add_rule("globex", number=GLOBEX_MAIN, agent="d")

    # Ordered by number, then priority.
    assert [r.id for r in await control.list_rules("acme")] == [early.id, main.id, sales.id]
    assert [r.id for r in await control.list_rules("acme", ACME_MAIN)] == [early.id, main.id]
    assert await control.list_rules("acme", GLOBEX_MAIN) == []
    assert [r.id for r in await control.list_rules("globex")] == [theirs.id]

    got = await control.get_rule("acme", main.id)
    assert (got.number, got.agent, got.priority, got.active) == (ACME_MAIN, "a", 20, True)
    changed = await control.update_rule(
        "acme", main.id, agent="z", priority=1, context={"x": "y"}, caller_prefix="+1"
    )
    assert (changed.agent, changed.priority, changed.context, changed.caller_prefix) == (
        "z",
        1,
        {"x": "y"},
        "+1",
    )
    assert (await control.get_rule("acme", main.id)).context == {"x": "y"}

    with pytest.raises(NotFound):
        await control.get_rule("acme", theirs.id)
    with pytest.raises(NotFound):
        await control.update_rule("acme", theirs.id, agent="stolen")
    with pytest.raises(NotFound):
        await control.delete_rule("acme", theirs.id)
    assert (await control.get_rule("globex", theirs.id)).agent == "d"

    await control.delete_rule("acme", main.id)
    with pytest.raises(NotFound):
        await control.get_rule("acme", main.id)
    with pytest.raises(NotFound):
        await control.delete_rule("acme", main.id)


# --- credentials ---------------------------------------------------------------------------


async def test_put_credential_creates_then_replaces(control: ControlStore) -> None:
    row, created = await control.put_credential(
        "acme", "twilio", sealed="sealed-1", hints={"auth_token": "abcd"}
    )
    assert created is True
    assert (row.org_id, row.provider, row.sealed, row.hints) == (
        "acme",
        "twilio",
        "sealed-1",
        {"auth_token": "abcd"},
    )

    again, created = await control.put_credential(
        "acme", "twilio", sealed="sealed-2", hints={"auth_token": "wxyz"}
    )
    assert created is False
    assert again.id == row.id
    assert again.created_at == row.created_at
    stored = await control.get_credential("acme", "twilio")
    assert stored is not None
    assert (stored.id, stored.sealed, stored.hints) == (row.id, "sealed-2", {"auth_token": "wxyz"})
    assert len(await control.list_credentials("acme")) == 1


async def test_credentials_are_scoped_to_their_organization(control: ControlStore) -> None:
    await control.put_credential("acme", "twilio", sealed="acme-t", hints={})
    await control.put_credential("acme", "openai", sealed="acme-o", hints={"api_key": "1234"})
    _, created = await control.put_credential("globex", "twilio", sealed="globex-t", hints={})
    assert created is True  # one per organization and provider

    assert [c.provider for c in await control.list_credentials("acme")] == ["openai", "twilio"]
    assert [c.provider for c in await control.list_credentials("globex")] == ["twilio"]
    assert await control.get_credential("globex", "openai") is None
    theirs = await control.get_credential("globex", "twilio")
    assert theirs is not None and theirs.sealed == "globex-t"

    await control.delete_credential("acme", "twilio")
    assert await control.get_credential("acme", "twilio") is None
    with pytest.raises(NotFound):
        await control.delete_credential("acme", "twilio")
    with pytest.raises(NotFound):
        await control.delete_credential("acme", "deepgram")
    with pytest.raises(NotFound):
        await control.delete_credential("initech", "openai")
    assert [c.provider for c in await control.list_credentials("acme")] == ["openai"]
    still = await control.get_credential("globex", "twilio")
    assert still is not None and still.sealed == "globex-t"


# --- calls ---------------------------------------------------------------------------------


async def test_calls_are_listed_and_read_per_organization(store: JournalStore) -> None:
    acme = new_call_id()
    globex = new_call_id()
    default = new_call_id()
    await store.create_call(acme, carrier="twilio", started_at=T0, org_id="acme")
    await store.create_call(
        globex, carrier="twilio", started_at=T0, org_id="globex", direction="outbound"
    )
    await store.create_call(default, carrier="webrtc", started_at=T0)

    assert [c.id for c in await store.list_calls(org="acme")] == [acme]
    assert [c.id for c in await store.list_calls(org="globex")] == [globex]
    assert [c.id for c in await store.list_calls(org=DEFAULT_ORG)] == [default]
    assert await store.list_calls(org="initech") == []
    assert {c.id for c in await store.list_calls()} == {acme, globex, default}

    detail = await store.get_call(acme, org="acme")
    assert detail is not None and detail.call.org_id == "acme"
    assert detail.call.direction == "inbound"
    assert await store.get_call(acme, org="globex") is None
    assert await store.get_call(acme, org=DEFAULT_ORG) is None
    assert await store.get_call(acme) is not None  # unscoped: the server's own reads

    theirs = await store.get_call(globex, org="globex")
    assert theirs is not None and theirs.call.direction == "outbound"
    own = await store.get_call(default, org=DEFAULT_ORG)
    assert own is not None and own.call.org_id == DEFAULT_ORG


# --- the additive migration (SQLite) -------------------------------------------------------

OLD_CALLS = """
CREATE TABLE calls (
    id VARCHAR(26) NOT NULL PRIMARY KEY,
    carrier VARCHAR NOT NULL,
    call_sid VARCHAR,
    stream_sid VARCHAR,
    agent VARCHAR,
    from_number VARCHAR,
    to_number VARCHAR,
    status VARCHAR NOT NULL,
    started_at DATETIME NOT NULL,
    ended_at DATETIME,
    duration_secs FLOAT,
    end_reason TEXT,
    context JSON,
    record_count INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL
)
"""


async def test_open_adds_the_control_plane_columns_to_an_old_calls_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_id = new_call_id()
    stamp = "2025-03-01 09:30:00.000000"
    with sqlite3.connect(path) as db:
        db.execute(OLD_CALLS)
        db.execute(
            "INSERT INTO calls (id, carrier, call_sid, agent, from_number, to_number, status, "
            "started_at, ended_at, duration_secs, end_reason, context, record_count, "
            "created_at, updated_at) VALUES (?, 'twilio', 'CA1', 'support', '+15550001111', "
            "'+15550002222', 'completed', ?, ?, 65.5, 'caller hung up', '{\"a\": 1}', 0, ?, ?)",
            (old_id, stamp, "2025-03-01 09:31:05.500000", stamp, stamp),
        )
    db.close()

    async with sqlite_store(path) as store:
        detail = await store.get_call(old_id)
        assert detail is not None
        call = detail.call
        assert (call.org_id, call.direction, call.campaign_id) == (DEFAULT_ORG, "inbound", None)
        assert (call.carrier, call.call_sid, call.agent, call.status) == (
            "twilio",
            "CA1",
            "support",
            "completed",
        )
        assert call.started_at == T0 and call.duration_secs == 65.5
        assert call.context == {"a": 1}
        assert [c.id for c in await store.list_calls(org=DEFAULT_ORG)] == [old_id]
        assert await store.get_call(old_id, org="acme") is None

        new_id = new_call_id()
        await store.create_call(
            new_id, carrier="twilio", started_at=T0, org_id="acme", direction="outbound"
        )
        created = await store.get_call(new_id, org="acme")
        assert created is not None and created.call.direction == "outbound"
        assert [c.id for c in await store.list_calls(org="acme")] == [new_id]
        # The control plane's tables were created alongside.
        control = ControlStore(store)
        await control.add_number("acme", number=ACME_MAIN, provider="twilio")
        assert [n.number for n in await control.list_numbers("acme")] == [ACME_MAIN]

    # Opening the upgraded file again changes nothing.
    async with sqlite_store(path) as store:
        assert {c.id for c in await store.list_calls()} == {old_id, new_id}

    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(calls)")}
        indexes = {row[1] for row in db.execute("PRAGMA index_list(calls)")}
    db.close()
    assert {"org_id", "direction", "campaign_id"} <= columns
    assert {"ix_calls_org_id_started_at", "ix_calls_started_at", "ix_calls_call_sid"} <= indexes
