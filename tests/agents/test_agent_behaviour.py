"""The behaviour knobs of an agent file: the greeting's delay and the silence checks."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bridge.agents import Agent, MissingVariablesError
from bridge.agents.template import render_agent
from bridge.errors import ConfigError
from tests.agents.test_agents_loader import load


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    directory = tmp_path / "prompts"
    directory.mkdir()
    (directory / "basic.md").write_text("Help {{customer}} politely.\n", encoding="utf-8")
    return directory


ELEVENLABS = 'engine = "elevenlabs"\ninstructions = "x"\n[elevenlabs]\nagent_id = "a1"\n'


def test_defaults(tmp_path: Path, prompts: Path) -> None:
    agent = load(tmp_path, prompts, 'instructions = "x"')
    assert agent.initial_message_delay_s == 0.0
    assert agent.idle_time_seconds is None  # no silence checks unless asked for
    assert agent.max_idle_check_count == 2
    assert agent.idle_message == "Are you still there?"


def test_every_knob(tmp_path: Path, prompts: Path) -> None:
    agent = load(
        tmp_path,
        prompts,
        """
        prompt = "basic"
        initial_message = "Hello {{customer}}."
        initial_message_delay_s = 1.5
        idle_time_seconds = 8
        max_idle_check_count = 0
        idle_message = "{{customer}}, are you still there?"
        [variables]
        customer = "Ada"
        """,
    )
    assert agent.initial_message_delay_s == 1.5
    assert agent.idle_time_seconds == 8.0
    assert agent.max_idle_check_count == 0
    rendered = render_agent(agent, {"customer": "Bo"})
    assert rendered.idle_message == "Bo, are you still there?"
    with pytest.raises(MissingVariablesError) as raised:
        render_agent(Agent(name="x", idle_message="{{who}}?"), {})
    assert raised.value.missing == ("who",)


BAD = {
    "negative delay": ("initial_message_delay_s = -1", "initial_message_delay_s", "at least 0"),
    "delay too long": ("initial_message_delay_s = 61", "initial_message_delay_s", "at most 60"),
    "delay as text": ('initial_message_delay_s = "1"', "initial_message_delay_s", "number"),
    "zero idle time": ("idle_time_seconds = 0", "idle_time_seconds", "greater than 0"),
    "idle time as bool": ("idle_time_seconds = true", "idle_time_seconds", "number"),
    "negative count": ("max_idle_check_count = -1", "max_idle_check_count", "at least 0"),
    "fractional count": ("max_idle_check_count = 1.5", "max_idle_check_count", "integer"),
    "count as bool": ("max_idle_check_count = true", "max_idle_check_count", "integer"),
    "empty idle message": ('idle_message = " "', "idle_message", "empty"),
    "stray braces": ('idle_message = "{{ oops"', "idle_message", "placeholder"),
    "misspelt": ("idle_time_second = 5", "idle_time_second", "did you mean 'idle_time_seconds'"),
}


@pytest.mark.parametrize(("line", "field", "problem"), BAD.values(), ids=BAD.keys())
def test_bad_values_are_errors(
    tmp_path: Path,
    prompts: Path,
    line: str,
    field: str,
    problem: str,
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, prompts, f'instructions = "x"\n{line}')
    message = str(raised.value)
    assert f": {field}: " in message and problem in message, message


@pytest.mark.parametrize("line", ["initial_message_delay_s = 2", "idle_time_seconds = 10"])
def test_elevenlabs_cannot_delay_or_check_on_silence(
    tmp_path: Path,
    prompts: Path,
    line: str,
) -> None:
    with pytest.raises(ConfigError, match="not supported by engine elevenlabs"):
        load(tmp_path, prompts, f"{line}\n{ELEVENLABS}")
    assert load(tmp_path, prompts, f"initial_message_delay_s = 0\n{ELEVENLABS}")


def test_temperature_on_openai_realtime_is_reported_as_not_sent(
    tmp_path: Path,
    prompts: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.agents.loader"):
        load(tmp_path, prompts, 'instructions = "x"\ntemperature = 0.5')
        load(
            tmp_path,
            prompts,
            'engine = "pipeline"\ninstructions = "x"\ntemperature = 0.5\n'
            '[llm]\nprovider = "openai"',
        )
    (record,) = caplog.records
    assert "takes no temperature" in record.getMessage()
