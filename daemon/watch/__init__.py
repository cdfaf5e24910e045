"""``mididuet watch`` and ``mididuet status``: clients of a running daemon's control socket.

Never loaded by ``mididuet run`` (an import-linter contract): Textual is imported only here.
"""
