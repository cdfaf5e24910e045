"""Tells when the JACK server goes away (stopped, crashed, restarted).

rtmidi registers no shutdown callback, so a small libjack client of our own does
(:class:`ServerWatch`). Only the runner uses it; kept apart from the ports
because it talks to libjack through ``ctypes``, not through rtmidi.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

# JackOptions.JackNoStartServer (jack/types.h): never start a server as a side effect.
_JACK_NO_START_SERVER = 0x01
_JackShutdown = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _loaded_libjack() -> str | None:
    """The path of the libjack this process has loaded (python-rtmidi bundles its own), or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and "/libjack" in fields[5]:
                    return fields[5].strip()
    except OSError:  # no /proc (not Linux)
        return None
    return None


class ServerWatch:
    """Tells when the JACK server goes away (stopped, crashed, restarted).

    rtmidi registers no shutdown callback: its clients outlive the server silently (port
    lists stay as they were, sends go nowhere) and cannot be revived in this process. So
    a client of our own, with no ports and never activated, asks libjack's
    ``jack_on_shutdown`` to call ``on_gone`` (on libjack's thread: it must only record).
    Uses the libjack rtmidi loaded (found in /proc/self/maps), so both share one
    library state. :meth:`start` returns False where that cannot be done (another API,
    not Linux, no libjack loaded yet): then the loss goes unnoticed, as before.
    """

    def __init__(self, on_gone: Callable[[], Any], name: str = "mididuet watch") -> None:
        self.on_gone = on_gone
        self.name = name
        self._lib: Any = None
        self._client: int | None = None
        # Kept referenced: libjack holds a raw pointer to it; a collected callback would crash.
        self._callback = _JackShutdown(lambda _arg: self.on_gone())

    def start(self) -> bool:
        """Open the watching client. True when watching; False (nothing opened) otherwise."""
        path = _loaded_libjack()
        if path is None:
            return False
        try:
            lib = ctypes.CDLL(path)
            lib.jack_client_open.restype = ctypes.c_void_p
            lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
            lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _JackShutdown, ctypes.c_void_p]
            lib.jack_client_close.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError):
            return False
        status = ctypes.c_int(0)
        client = lib.jack_client_open(self.name.encode(), _JACK_NO_START_SERVER, ctypes.byref(status))
        if not client:
            return False
        lib.jack_on_shutdown(client, self._callback, None)
        self._lib, self._client = lib, client
        return True

    def close(self) -> None:
        """Close the watching client (safe when the server is gone: libjack cleans up)."""
        if self._client is not None:
            client, self._client = self._client, None
            self._lib.jack_client_close(client)
