"""Secrets at rest and signed tokens (bridge.secrets)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import ConfigError
from bridge.secrets import (
    SecretBox,
    SecretKeyError,
    hash_api_key,
    last4,
    looks_like_api_key,
    new_api_key,
)

KEY = SecretBox.generate_key()
BOX = SecretBox([KEY])


def test_api_keys_are_random_and_stored_as_sha256() -> None:
    keys = {new_api_key() for _ in range(100)}
    assert len(keys) == 100
    key = keys.pop()
    assert looks_like_api_key(key) and len(key) == 43
    assert hash_api_key(key) == hash_api_key(key) and len(hash_api_key(key)) == 64
    assert not looks_like_api_key("cb_short") and not looks_like_api_key("sk-" + key[3:])


def test_last4_never_shows_more_than_half() -> None:
    assert last4("AC0123456789abcdef") == "cdef"
    assert last4("1234567") == ""


def test_seal_open_and_rotation() -> None:
    sealed = BOX.seal(b'{"auth_token": "s3cret-value"}')
    assert b"s3cret" not in sealed.encode()
    assert BOX.open(sealed) == b'{"auth_token": "s3cret-value"}'
    rotated = SecretBox([SecretBox.generate_key(), KEY])  # new key first, old one still opens
    assert rotated.open(sealed) == b'{"auth_token": "s3cret-value"}'
    assert rotated.open(rotated.seal(b"x")) == b"x"
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        SecretBox([SecretBox.generate_key()]).open(sealed)


@pytest.mark.parametrize("keys", [[], ["not-a-key"], ["c2hvcnQ="]])
def test_bad_secret_keys_are_config_errors(keys: list[str]) -> None:
    with pytest.raises(ConfigError):
        SecretBox(keys)


def test_tokens_carry_purpose_payload_and_expiry() -> None:
    token = BOX.sign("audio", "01JCALL", 1_000)
    assert BOX.verify("audio", token, 999.9) == "01JCALL"
    assert BOX.verify("audio", token, 1_000) is None  # expired
    assert BOX.verify("stream", token, 10) is None  # another purpose
    assert SecretBox([SecretBox.generate_key()]).verify("audio", token, 10) is None
    payload, expiry, mac = token.split(".")
    assert BOX.verify("audio", f"{payload}.{int(expiry) + 1}.{mac}", 10) is None
    assert BOX.verify("audio", f"01JCALM.{expiry}.{mac}", 10) is None
    with pytest.raises(ValueError, match=r"'\.'"):
        BOX.sign("audio", "a.b", 1)


@given(st.text(max_size=60), st.integers(0, 10**12), st.text(max_size=40))
def test_verify_never_raises_on_garbage(payload: str, expiry: int, mac: str) -> None:
    assert BOX.verify("audio", f"{payload}.{expiry}.{mac}", 0) is None
    assert BOX.verify("audio", payload, 0) is None
