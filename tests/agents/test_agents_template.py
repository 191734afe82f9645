"""Prompt templates: placeholder syntax, missing variables, verbatim single-pass rendering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.agents import Agent, MissingVariablesError, placeholders, render, render_agent
from bridge.agents.template import check, is_variable_name
from bridge.errors import ConfigError

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True)
# Literal text with no braces, so it can neither form nor break a placeholder.
literals = st.text(st.characters(blacklist_characters="{}", codec="utf-8"), max_size=20)
spaces = st.sampled_from(["", " ", "  ", "\t", " \t "])
# Values may hold anything, including placeholder syntax: it must come out verbatim.
values_text = st.one_of(
    st.text(max_size=20),
    names.map(lambda name: "{{" + name + "}}"),
    st.just("{{ caller_name }} and {{{{x}}}}"),
)


@st.composite
def templates(draw: st.DrawFn) -> tuple[str, list[str], str, dict[str, str]]:
    """A template, its placeholder names in order, its expected rendering, and the values."""
    parts = draw(st.lists(st.tuples(literals, names, spaces, spaces), max_size=6))
    tail = draw(literals)
    used = [name for _, name, _, _ in parts]
    values = {name: draw(values_text) for name in used}
    template = "".join(f"{lit}{{{{{a}{name}{b}}}}}" for lit, name, a, b in parts) + tail
    expected = "".join(lit + values[name] for lit, name, _, _ in parts) + tail
    return template, used, expected, values


@given(templates())
def test_render_inserts_values_verbatim_in_one_pass(
    case: tuple[str, list[str], str, dict[str, str]],
) -> None:
    template, used, expected, values = case
    assert placeholders(template) == set(used)
    check(template)
    assert render(template, values) == expected


@given(templates(), st.dictionaries(names, st.text(max_size=5), max_size=3))
def test_extra_values_are_ignored(
    case: tuple[str, list[str], str, dict[str, str]], extra: dict[str, str]
) -> None:
    template, _, expected, values = case
    assert render(template, {**extra, **values}) == expected


@given(templates())
def test_missing_variables_are_all_reported(
    case: tuple[str, list[str], str, dict[str, str]],
) -> None:
    template, used, _, _ = case
    if not used:
        assert render(template, {}) == template
        return
    with pytest.raises(MissingVariablesError) as caught:
        render(template, {}, source="prompt 'p'")
    assert caught.value.missing == tuple(sorted(set(used)))
    assert isinstance(caught.value, ConfigError)


def test_missing_message_lists_every_name_sorted() -> None:
    with pytest.raises(ConfigError, match=r"^prompt 'support' needs variables not provided: "):
        render("{{order_id}} for {{ customer_name }}", {"x": "1"}, source="prompt 'support'")
    with pytest.raises(ConfigError) as caught:
        render("{{order_id}} for {{ customer_name }}", {}, source="prompt 'support'")
    assert caught.value.message == (
        "prompt 'support' needs variables not provided: customer_name, order_id"
    )


def test_value_with_placeholder_syntax_stays_literal() -> None:
    out = render("Hi {{name}}, {{ other }}", {"name": "{{other}}", "other": "{{name}}"})
    assert out == "Hi {{other}}, {{name}}"


@pytest.mark.parametrize(
    "text",
    [
        "{{name}}",
        "{{ name }}",
        "{{\tname\t}}",
        "{{_x9}}",
        "a lone { brace and }} closing",
        '{"json": {"nested": 1}}',
    ],
)
def test_check_accepts(text: str) -> None:
    check(text)


@pytest.mark.parametrize(
    "text",
    ["{{customer name}}", "{{1abc}}", "{{}}", "{{ name", "literal {{ braces", "{{{{x}}}}"],
)
def test_check_rejects_stray_open_braces(text: str) -> None:
    with pytest.raises(ConfigError, match=r"line 2: '\{\{' must open a placeholder"):
        check("first line\n" + text, source="prompt")
    # render itself is lenient: what is not a placeholder is left alone
    assert render(text, {"name": "N", "x": "X"}).count("{{") >= 1


def test_is_variable_name() -> None:
    assert is_variable_name("caller_name")
    assert not is_variable_name("caller-name")
    assert not is_variable_name("9lives")


def test_render_agent_merges_defaults_and_call_variables() -> None:
    agent = Agent(
        name="a",
        prompt_template="You talk to {{customer_name}} about {{topic}}.",
        variables={"topic": "billing", "customer_name": "default"},
        initial_message="Hi {{ customer_name }}!",
    )
    rendered = render_agent(agent, {"customer_name": "Dana"})
    assert rendered.instructions == "You talk to Dana about billing."
    assert rendered.initial_message == "Hi Dana!"
    assert render_agent(agent, {}).initial_message == "Hi default!"


def test_render_agent_reports_prompt_and_greeting_variables_together() -> None:
    agent = Agent(name="s", prompt_template="{{b}}", initial_message="{{a}} {{c}}")
    with pytest.raises(MissingVariablesError) as caught:
        render_agent(agent, {"c": "3"})
    assert caught.value.missing == ("a", "b")
    assert caught.value.message == "agent 's' needs variables not provided: a, b"


def test_render_agent_without_initial_message() -> None:
    rendered = render_agent(Agent(name="q", prompt_template="plain"), {})
    assert rendered.instructions == "plain"
    assert rendered.initial_message is None
