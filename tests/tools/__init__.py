"""Tests of bridge.tools: webhook signing and dispatch."""
