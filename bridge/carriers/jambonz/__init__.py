"""jambonz ``listen`` verb with streaming bidirectional audio: the codec (pure)."""
