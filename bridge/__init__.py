"""callbridge: realtime AI voice-agent bridge."""
