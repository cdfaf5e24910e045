"""The control socket of ``mididuet run``: events out to ``mididuet watch`` and ``status``,
live controls in (docs/control-protocol.md).

- :mod:`.paths`: where the socket lives, and the lock that makes one daemon its owner;
- :mod:`.protocol`: line-delimited JSON, shared with the clients (imports nothing heavy);
- :mod:`.controls`: the live controls, one line each;
- :mod:`.hub`: the loop's side (an engine observer that only appends to deques);
- :mod:`.server`: the socket's own thread (selectors), with a bounded buffer per client.
"""
