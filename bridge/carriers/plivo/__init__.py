"""Plivo Audio Streams: the codec (pure) and the REST hang-up (control)."""
