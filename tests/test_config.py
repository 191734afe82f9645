"""Settings from the environment: the parts with a format of their own."""

from __future__ import annotations

import pytest

from bridge.config import Settings, ice_servers
from bridge.errors import ConfigError


def test_ice_servers_from_json() -> None:
    settings = Settings.from_env(
        {
            "CALLBRIDGE_ICE_SERVERS": '[{"urls": "stun:stun.example.org:3478"},'
            ' {"urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],'
            ' "username": "u", "credential": "p"}]'
        }
    )
    assert settings.ice_servers == (
        {"urls": ["stun:stun.example.org:3478"]},
        {
            "urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
            "username": "u",
            "credential": "p",
        },
    )
    assert Settings.from_env({}).ice_servers == ()


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("stun:stun.example.org", "not JSON"),
        ('{"urls": "stun:x"}', "JSON list"),
        ('[{"url": "stun:x"}]', "url"),
        ('[{"urls": "http://x"}]', "stun:/turn: URLs"),
        ('[{"urls": []}]', "stun:/turn: URLs"),
        ('[{"urls": "stun:x", "password": "p"}]', "password"),
        ("[1]", "1"),
    ],
)
def test_bad_ice_servers_say_what_is_wrong(raw: str, why: str) -> None:
    with pytest.raises(ConfigError, match="CALLBRIDGE_ICE_SERVERS") as caught:
        ice_servers(raw)
    assert why in str(caught.value)
