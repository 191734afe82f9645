"""Tests of bridge.agents: the loader, templates and the repository's agent files."""
