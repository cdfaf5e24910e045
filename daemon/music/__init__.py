"""Music: tokens, reading MIDI files, MIDI's numbers and mididuet's time units.

The bottom of the pipeline: everything else may use it, and it uses nothing of mididuet's.
"""
