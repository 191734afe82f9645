"""Prompt templates: ``{{ name }}`` placeholders filled from agent defaults and call variables.

The syntax is deliberately tiny:

* a placeholder is ``{{``, optional spaces or tabs, a name matching ``[A-Za-z_][A-Za-z0-9_]*``,
  optional spaces or tabs, ``}}``;
* there is no escape, so a template cannot contain a literal ``{{`` — :func:`check` (run by the
  loader) rejects any ``{{`` that does not open a valid placeholder, which also catches typos
  such as ``{{customer name}}``. A lone ``{`` or ``}}`` is ordinary text;
* values are inserted verbatim in a single pass: a value that itself contains ``{{x}}`` stays
  literal, it is never expanded again.

Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bridge.agents.model import Agent
from bridge.errors import ConfigError

NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
_PLACEHOLDER = re.compile(r"\{\{[ \t]*(" + NAME_PATTERN + r")[ \t]*\}\}")
_NAME = re.compile(NAME_PATTERN)


class MissingVariablesError(ConfigError):
    """A template needs variables that neither the agent nor the call provided.

    ``missing`` lists every absent name (sorted), so a caller can report them all at once.
    """

    def __init__(self, source: str, missing: Iterable[str]) -> None:
        self.missing: tuple[str, ...] = tuple(sorted(missing))
        super().__init__(f"{source} needs variables not provided: {', '.join(self.missing)}")


@dataclass(frozen=True, slots=True)
class RenderedAgent:
    """An agent's text with every placeholder filled in, ready for one call."""

    instructions: str
    initial_message: str | None
    variables: Mapping[str, str] = field(default_factory=dict)
    """Every value the templates could use (agent defaults + the call's own)."""
    history: tuple[tuple[str, str], ...] = ()
    """(role, text) of the conversation so far, when an engine takes over a call."""
    idle_message: str = "Are you still there?"


def is_variable_name(name: str) -> bool:
    """Whether ``name`` may be used as a placeholder name."""
    return _NAME.fullmatch(name) is not None


def placeholders(template: str) -> set[str]:
    """The names of every placeholder in ``template``."""
    return {match.group(1) for match in _PLACEHOLDER.finditer(template)}


def check(template: str, source: str = "template") -> None:
    """Raise :class:`ConfigError` if ``template`` has a ``{{`` that opens no valid placeholder."""
    position = 0
    while (start := template.find("{{", position)) != -1:
        match = _PLACEHOLDER.match(template, start)
        if match is None:
            line = template.count("\n", 0, start) + 1
            snippet = template[start : start + 24].split("\n", 1)[0]
            raise ConfigError(
                f"{source}: line {line}: '{{{{' must open a placeholder like '{{{{ name }}}}', "
                f"got {snippet!r} (a literal '{{{{' cannot appear in a template)"
            )
        position = match.end()


def render(template: str, values: Mapping[str, str], *, source: str = "template") -> str:
    """Fill every placeholder of ``template`` from ``values``, in one pass.

    Raises :class:`MissingVariablesError` (a :class:`ConfigError`) naming *all* missing
    variables; ``source`` (e.g. ``"prompt 'support'"``) starts its message.
    """
    missing = placeholders(template) - values.keys()
    if missing:
        raise MissingVariablesError(source, missing)
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def render_agent(agent: Agent, call_variables: Mapping[str, str]) -> RenderedAgent:
    """Render an agent's prompt, initial and idle messages; call variables override agent
    defaults.

    Missing variables of the prompt and of the messages are reported together.
    """
    values = {**agent.variables, **call_variables}
    needed = placeholders(agent.prompt_template) | placeholders(agent.idle_message)
    if agent.initial_message is not None:
        needed |= placeholders(agent.initial_message)
    missing = needed - values.keys()
    if missing:
        raise MissingVariablesError(f"agent '{agent.name}'", missing)
    initial = agent.initial_message
    return RenderedAgent(
        instructions=render(agent.prompt_template, values),
        initial_message=None if initial is None else render(initial, values),
        variables=values,
        idle_message=render(agent.idle_message, values),
    )
