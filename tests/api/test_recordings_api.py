"""GET /v1/calls/{id}/audio and the call detail's recording_url, over a real (SQLite) journal and
recordings directory: signed links that need no key, keys that see only their organization,
byte ranges for players."""

from __future__ import annotations

import io
import time
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from bridge.api.recordings import RECORDING_TOKEN_PURPOSE, RECORDING_URL_TTL_S
from bridge.api.recordings import router as recordings_router
from bridge.audio.recorder import stereo_wav_header
from bridge.config import Settings
from bridge.journal.ids import new_call_id
from bridge.journal.store import JournalStore
from bridge.secrets import SecretBox
from tests.auth import SECRET_KEY, api_key, bearer

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
AUDIO = stereo_wav_header(8000, 8000 * 4) + np.arange(16000, dtype="<i2").tobytes()
BOX = SecretBox([SECRET_KEY])


@pytest.fixture
def recordings(app: FastAPI, tmp_path: Path) -> Path:
    directory = tmp_path / "recordings"
    directory.mkdir()
    app.include_router(recordings_router)
    app.state.secrets = BOX
    app.state.services = SimpleNamespace(settings=Settings(recordings_dir=directory))
    return directory


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The same app with no API key: what an ``<audio src>`` sends."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def recorded_call(
    journal: JournalStore,
    directory: Path,
    *,
    org: str = "default",
    ended: bool = True,
    file: bool = True,
) -> str:
    call_id = new_call_id()
    name = f"{call_id}.wav"
    await journal.create_call(call_id, carrier="twilio", started_at=T0, org_id=org, recording=name)
    if ended:
        await journal.finish_call(call_id, status="completed", end_reason="bye", ended_at=T0)
    if file:
        (directory / name).write_bytes(AUDIO)
    return call_id


async def url_of(client: httpx.AsyncClient, call_id: str) -> str:
    response = await client.get(f"/v1/calls/{call_id}")
    assert response.status_code == 200, response.text
    url = response.json()["recording_url"]
    assert isinstance(url, str)
    return url


def token(call_id: str, org: str = "default", expires_at: float | None = None) -> str:
    expires = int(time.time() + 60 if expires_at is None else expires_at)
    return BOX.sign(RECORDING_TOKEN_PURPOSE, f"{call_id}:{org}", expires)


async def test_the_recording_url_plays_without_a_key(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    journal: JournalStore,
    recordings: Path,
) -> None:
    call_id = await recorded_call(journal, recordings)
    url = await url_of(client, call_id)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("", "", f"/v1/calls/{call_id}/audio")
    (signed,) = parse_qs(parts.query)["token"]
    expires = int(signed.split(".")[1])
    assert 0 < expires - time.time() <= RECORDING_URL_TTL_S
    response = await anonymous.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.content == AUDIO
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, 8000)


async def test_byte_ranges_for_seeking(
    anonymous: httpx.AsyncClient, journal: JournalStore, recordings: Path
) -> None:
    call_id = await recorded_call(journal, recordings)
    url = f"/v1/calls/{call_id}/audio?token={token(call_id)}"
    part = await anonymous.get(url, headers={"Range": "bytes=44-1043"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 44-1043/{len(AUDIO)}"
    assert part.content == AUDIO[44:1044]
    tail = await anonymous.get(url, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, AUDIO[-10:])
    past = await anonymous.get(url, headers={"Range": f"bytes={len(AUDIO)}-"})
    assert past.status_code == 416


async def test_bad_tokens_are_refused(
    anonymous: httpx.AsyncClient, journal: JournalStore, recordings: Path
) -> None:
    call_id = await recorded_call(journal, recordings)
    other = await recorded_call(journal, recordings)
    good = token(call_id)
    cases: dict[str, tuple[str, int]] = {
        "another call's": (token(other), 403),
        "expired": (token(call_id, expires_at=time.time() - 1), 401),
        "forged": (good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"), 401),
        "re-dated": (good.replace(good.split(".")[1], str(int(time.time()) + 10**6)), 401),
        "for another purpose": (BOX.sign("stream", f"{call_id}:default", 2**40), 401),
        "signed with another key": (
            SecretBox([SecretBox.generate_key()]).sign(
                RECORDING_TOKEN_PURPOSE, f"{call_id}:default", 2**40
            ),
            401,
        ),
        "garbage": ("not a token", 401),
        "empty": ("", 401),
    }
    for what, (bad, status) in cases.items():
        response = await anonymous.get(f"/v1/calls/{call_id}/audio", params={"token": bad})
        assert response.status_code == status, what
        assert "detail" in response.json(), what
    assert (await anonymous.get(f"/v1/calls/{call_id}/audio")).status_code == 401  # no key


async def test_a_token_never_crosses_organizations(
    app: FastAPI, anonymous: httpx.AsyncClient, journal: JournalStore, recordings: Path
) -> None:
    acme_call = await recorded_call(journal, recordings, org="acme")
    # a token naming the right call but another organization (as if minted for a lookalike)
    response = await anonymous.get(
        f"/v1/calls/{acme_call}/audio", params={"token": token(acme_call, "default")}
    )
    assert response.status_code == 404
    response = await anonymous.get(
        f"/v1/calls/{acme_call}/audio", params={"token": token(acme_call, "acme")}
    )
    assert response.status_code == 200


async def test_api_keys_see_their_own_organization_only(
    app: FastAPI,
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    journal: JournalStore,
    recordings: Path,
) -> None:
    call_id = await recorded_call(journal, recordings)
    own = await client.get(f"/v1/calls/{call_id}/audio")  # a read key of the call's org
    assert (own.status_code, own.content) == (200, AUDIO)
    acme = bearer(await api_key(app, org="acme", scope="read"))
    assert (await anonymous.get(f"/v1/calls/{call_id}/audio", headers=acme)).status_code == 404
    assert (await anonymous.get(f"/v1/calls/{call_id}", headers=acme)).status_code == 404


async def test_calls_without_a_playable_recording(
    client: httpx.AsyncClient, journal: JournalStore, recordings: Path
) -> None:
    plain = new_call_id()
    await journal.create_call(plain, carrier="twilio", started_at=T0)
    await journal.finish_call(plain, status="completed", end_reason="bye", ended_at=T0)
    live = await recorded_call(journal, recordings, ended=False)
    gone = await recorded_call(journal, recordings, file=False)
    odd = new_call_id()
    await journal.create_call(odd, carrier="twilio", started_at=T0, recording="../journal.db")
    await journal.finish_call(odd, status="completed", end_reason="bye", ended_at=T0)

    expected: dict[str, tuple[Any, int]] = {
        plain: (None, 404),  # the agent did not record
        live: (None, 409),  # served once the call has ended (the file is complete then)
        gone: (str, 404),  # deleted from the recordings directory since
        odd: (str, 404),  # never a path out of the recordings directory
    }
    for call_id, (url, status) in expected.items():
        detail = (await client.get(f"/v1/calls/{call_id}")).json()
        if url is None:
            assert detail["recording_url"] is None, call_id
        else:
            assert isinstance(detail["recording_url"], url), call_id
        response = await client.get(f"/v1/calls/{call_id}/audio")
        assert response.status_code == status, (call_id, response.text)
        assert "detail" in response.json()
    missing = await client.get(f"/v1/calls/{new_call_id()}/audio")
    assert missing.status_code == 404


async def test_no_recording_url_without_a_secret_box(
    app: FastAPI, client: httpx.AsyncClient, journal: JournalStore, recordings: Path
) -> None:
    call_id = await recorded_call(journal, recordings)
    del app.state.secrets
    assert (await client.get(f"/v1/calls/{call_id}")).json()["recording_url"] is None
    response = await client.get(f"/v1/calls/{call_id}/audio", params={"token": token(call_id)})
    assert response.status_code == 401
