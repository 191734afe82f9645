"""``summary`` and ``[[collect_fields]]`` in agent files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bridge.agents.loader import load_agent
from bridge.agents.model import Agent, CollectField
from bridge.errors import ConfigError


def load(tmp_path: Path, text: str) -> Agent:
    path = tmp_path / "agent.toml"
    path.write_text('instructions = "Be brief."\n' + textwrap.dedent(text))
    return load_agent(path, tmp_path, {})


def test_collect_fields_turn_the_summary_on(tmp_path: Path) -> None:
    agent = load(
        tmp_path,
        """
        [[collect_fields]]
        name = "caller_name"
        description = "  The caller's name "

        [[collect_fields]]
        name = "party_size"
        type = "number"

        [[collect_fields]]
        name = "reminder"
        type = "boolean"

        [[collect_fields]]
        name = "visit"
        type = "enum"
        values = ["checkup", "cleaning"]
        """,
    )
    assert agent.summary is True
    assert agent.collect_fields == (
        CollectField("caller_name", "The caller's name"),
        CollectField("party_size", "", "number"),
        CollectField("reminder", "", "boolean"),
        CollectField("visit", "", "enum", ("checkup", "cleaning")),
    )


def test_summary_defaults_and_switch(tmp_path: Path) -> None:
    assert load(tmp_path, "").summary is False
    assert load(tmp_path, "summary = true").summary is True
    assert load(tmp_path, "summary = true").collect_fields == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("summary = 1", "summary: must be true or false"),
        ('summary = false\n[[collect_fields]]\nname = "a"', "collect_fields need summary = true"),
        ('collect_fields = "a"', "collect_fields: must be an array of tables"),
        ("collect_fields = [1]", "collect_fields[0]: must be a table"),
        ('[[collect_fields]]\nname = "a b"', "collect_fields[0].name: must be 1-64"),
        ("[[collect_fields]]\ndescription = 'x'", "collect_fields[0].name: must be 1-64"),
        ('[[collect_fields]]\nname = "a"\ntype = "date"', "collect_fields[0].type: must be one"),
        ('[[collect_fields]]\nname = "a"\nvalues = ["x"]', 'values: only for type = "enum"'),
        ('[[collect_fields]]\nname = "a"\ntype = "enum"', "an enum needs an array"),
        ('[[collect_fields]]\nname = "a"\ntype = "enum"\nvalues = []', "an enum needs an array"),
        ('[[collect_fields]]\nname = "a"\ntype = "enum"\nvalues = ["x", "x"]', "not repeat"),
        ('[[collect_fields]]\nname = "a"\ndescription = 3', "description: must be a string"),
        ('[[collect_fields]]\nname = "a"\nkind = "x"', "collect_fields[0].kind: unknown key"),
        ('[[collect_fields]]\nname = "a"\n[[collect_fields]]\nname = "a"', "duplicate name"),
    ],
)
def test_bad_collect_fields_say_where(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text)
    assert str(raised.value).startswith(str(tmp_path / "agent.toml"))
    assert problem in str(raised.value)


def test_too_many_fields(tmp_path: Path) -> None:
    fields = "".join(f'[[collect_fields]]\nname = "f{i}"\n' for i in range(51))
    with pytest.raises(ConfigError, match="at most 50"):
        load(tmp_path, fields)
