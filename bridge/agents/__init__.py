"""Agents as data: definitions in ``agents/*.toml``, prompt templates in ``prompts/*.md``."""

from bridge.agents.loader import AgentRegistry, load_agent, load_agents
from bridge.agents.model import Agent, ToolSpec
from bridge.agents.template import (
    MissingVariablesError,
    RenderedAgent,
    placeholders,
    render,
    render_agent,
)

__all__ = [
    "Agent",
    "AgentRegistry",
    "MissingVariablesError",
    "RenderedAgent",
    "ToolSpec",
    "load_agent",
    "load_agents",
    "placeholders",
    "render",
    "render_agent",
]
