"""Which format a browser call carries its audio in: the engine's own, so nothing resamples
twice."""

from __future__ import annotations

from bridge.agents.model import Agent
from bridge.runtime.engines import preferred_format


def test_each_engine_gets_its_widest_format() -> None:
    assert preferred_format(Agent("a", engine="openai_realtime")) == "pcm16/24000"
    assert preferred_format(Agent("b", engine="elevenlabs")) == "pcm16/24000"
    assert preferred_format(Agent("c", engine="pipeline")) == "pcmu"


def test_the_agents_own_format_wins_and_unknown_engines_get_mulaw() -> None:
    assert preferred_format(Agent("a", engine="openai_realtime", audio_format="pcmu")) == "pcmu"
    assert preferred_format(Agent("x", engine="custom")) == "pcmu"
