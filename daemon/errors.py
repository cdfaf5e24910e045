"""The base exception: the CLI turns any :class:`MididuetError` into one line and exit code 2.

Each step defines its own subclass where its errors are raised (``BundleError`` in
:mod:`.predict.bundle`, ``PortError`` in :mod:`.ports.api`, ``ConfigError`` in
:mod:`.service.config`).
"""


class MididuetError(Exception):
    """A known problem that the user can act on (bad input, a missing port, a bad model)."""
