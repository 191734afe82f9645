"""Exotel Voicebot applet (bidirectional stream): the codec (pure)."""
