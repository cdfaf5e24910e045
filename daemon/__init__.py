"""mididuet's real-time half: tokens, the model bundle, the engine and its ports."""
