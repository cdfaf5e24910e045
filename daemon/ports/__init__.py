"""Ports: choosing the MIDI API, matching port names, opening the input and the output,
keeping a port by name across losses, and watching the JACK server."""
