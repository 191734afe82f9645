"""``record`` in an agent file: off unless set, a boolean, and the recordings directory setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.agents import load_agent
from bridge.config import Settings
from bridge.errors import ConfigError


def agent_file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'instructions = "Help."\n{extra}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize(("line", "record"), [("", False), ("record = true", True)])
def test_record_is_off_unless_the_agent_turns_it_on(
    tmp_path: Path, line: str, record: bool
) -> None:
    assert load_agent(agent_file(tmp_path, line), tmp_path, {}).record is record


def test_record_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\.toml: record: must be true or false"):
        load_agent(agent_file(tmp_path, 'record = "yes"'), tmp_path, {})


def test_a_misspelt_record_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'record'"):
        load_agent(agent_file(tmp_path, "recrod = true"), tmp_path, {})


def test_the_recordings_directory_setting() -> None:
    assert Settings.from_env({}).recordings_dir == Path("var/recordings")
    env = {"CALLBRIDGE_RECORDINGS_DIR": "calls/recorded"}
    assert Settings.from_env(env).recordings_dir == Path("calls/recorded")
