"""Asterisk ``chan_websocket``: media over a websocket from a ``WebSocket/…`` channel."""
