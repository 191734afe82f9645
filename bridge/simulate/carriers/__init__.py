"""Carrier wires for the simulated caller: each carrier's media-stream protocol, carrier side."""
