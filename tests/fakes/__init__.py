"""Fake peers for tests: real protocol over loopback sockets, validated against vendor SDK types."""
