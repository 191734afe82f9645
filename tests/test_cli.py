"""The ``callbridge`` command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import __version__
from bridge.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_bench_outside_a_checkout_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--calls", "10"]) == 2
    assert "source checkout" in capsys.readouterr().err


def test_unknown_serve_option_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--bogus"])
    assert info.value.code == 2


def test_bad_setting_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLBRIDGE_PORT", "eighty")
    assert main(["serve"]) == 2
    assert "CALLBRIDGE_PORT must be a number" in capsys.readouterr().err


def test_keys_create_list_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from bridge.journal.control import ControlStore
    from bridge.journal.store import JournalStore
    from bridge.secrets import hash_api_key

    url = f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}"
    monkeypatch.setenv("CALLBRIDGE_DATABASE_URL", url)
    assert main(["keys", "create", "--org", "acme", "--scope", "write", "--name", "ci"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("cb_") and "organization acme, scope write" in err
    key_id = err.split()[1].rstrip(",")

    async def stored() -> tuple[str, str, bool]:
        store = await JournalStore.open(url)
        try:
            row = await ControlStore(store).key_by_hash(hash_api_key(key))
            return (row.org_id, row.scope, True) if row else ("", "", False)
        finally:
            await store.close()

    assert asyncio.run(stored()) == ("acme", "write", True)
    assert main(["keys", "list", "--org", "acme"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and f"…{key[-4:]}" in listing and key not in listing
    assert main(["keys", "revoke", key_id, "--org", "default"]) == 1  # another org's key
    assert "no key" in capsys.readouterr().err
    assert main(["keys", "revoke", key_id, "--org", "acme"]) == 0
    assert asyncio.run(stored())[2] is False
    assert main(["keys", "create", "--org", "Not Valid"]) == 2


def test_keys_secret_prints_a_fernet_key(capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.secrets import SecretBox

    assert main(["keys", "secret"]) == 0
    key = capsys.readouterr().out.strip()
    box = SecretBox([key])
    assert box.open(box.seal(b"token")) == b"token"


def test_campaign_status_shows_progress_bars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from bridge.journal.campaigns import CampaignStore
    from bridge.journal.control import ControlStore
    from bridge.journal.store import JournalStore

    url = f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}"
    monkeypatch.setenv("CALLBRIDGE_DATABASE_URL", url)

    async def seed() -> str:
        store = await JournalStore.open(url)
        try:
            campaigns = CampaignStore(store, ControlStore(store))
            numbers = [(f"+1555010000{i}", {}) for i in range(4)]
            row = await campaigns.create("acme", numbers, name="renewals", agent="bot")
            due = await campaigns.due(row.id, row.created_at, 3)
            for contact, ok in zip(due, (True, True, False), strict=True):
                await campaigns.mark_dialing(contact.id, f"01CALL{contact.id:020d}", row.created_at)
                await campaigns.finish_contact(
                    contact.id,
                    status="done" if ok else "failed",
                    outcome="completed" if ok else "busy",
                    success=ok,
                    duration_secs=90.0 if ok else 0.0,
                )
            return row.id
        finally:
            await store.close()

    campaign_id = asyncio.run(seed())
    assert main(["campaign", "status", "--org", "acme"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"renewals  ({campaign_id}, draft)"
    assert "[" + "#" * 22 + "·" * 8 + "]  75%" in out[1] and "3/4 numbers" in out[1]
    assert "[" + "#" * 15 + "·" * 15 + "]  50%" in out[2]
    assert "2 reached, 1 failed" in out[2] and "3 calls, 3m00s talking" in out[2]
    assert main(["campaign", "status", "nope", "--org", "acme"]) == 1
    assert main(["campaign", "status", "--org", "other"]) == 0
    assert "no campaigns in other" in capsys.readouterr().out
