"""Tests of bridge.webhooks: retry policy, signed payload, deliverer, delivery end to end."""
