"""The package's exceptions: the CLI turns any of them into one line and exit code 2."""


class MididuetError(Exception):
    """A known problem that the user can act on (bad input, a missing port, a bad model)."""


class BundleError(MididuetError):
    """A model bundle that is missing, damaged, or does not honour the contract."""
