"""Offline: the engine in simulated time, for files rather than ports: ``generate`` (a MIDI
file), ``demo`` (a duet as MIDI, a piano roll and a WAV), rendering and drawing.
``mididuet run`` never imports these."""
