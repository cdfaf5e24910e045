"""mididuet's offline half: read MIDI corpora, train the WaveNet, export a verified bundle."""
