"""Vonage Voice API websockets (NCCO ``connect`` to a ``websocket`` endpoint): the codec (pure)."""
