"""Service: how ``mididuet run`` is configured (the TOML file and the flags, both built
from the declared settings), launched, and run under systemd (the unit, notifications)."""
