"""mididuet's offline half: read MIDI corpora, train the WaveNet, export a verified bundle."""

# The --arch names, here so the CLI can list them without importing Keras (training.model builds them).
ARCHITECTURES = ("seed", "wavenet")
