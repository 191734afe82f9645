"""Tests of bridge.postcall: the answer schema, the offline fallback, the model step."""
