"""Tells when the JACK server goes away (stopped, crashed, restarted).

rtmidi registers no shutdown callback, so a small libjack client of our own does
(:class:`ServerWatch`). Only the runner uses it; kept apart from the ports
because it talks to libjack through ``ctypes``, not through rtmidi.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .libjack import classify, jack_symbol_library

# JackOptions.JackNoStartServer (jack/types.h): never start a server as a side effect.
_JACK_NO_START_SERVER = 0x01
_JackShutdown = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class ServerWatch:
    """Tells when the JACK server goes away (stopped, crashed, restarted).

    rtmidi registers no shutdown callback: its clients outlive the server silently (port
    lists stay as they were, sends go nowhere) and cannot be revived in this process. So
    a client of our own, with no ports, asks libjack's ``jack_on_shutdown`` to call
    ``on_gone`` (on libjack's thread: it must only record). It uses the very libjack
    rtmidi's calls are bound to (:func:`.libjack.jack_symbol_library`), already loaded,
    so both share one library state; and it is activated, because pipewire-jack tells
    only activated clients that the server went. :meth:`start` returns False where that
    cannot be done (another API, not Linux, no libjack loaded yet): then the loss goes
    unnoticed, as before.
    """

    def __init__(self, on_gone: Callable[[], Any], name: str = "mididuet watch") -> None:
        self.on_gone = on_gone
        self.name = name
        self.library: Path | None = None  # the libjack in use, once started
        self._lib: Any = None
        self._client: int | None = None
        # Kept referenced: libjack holds a raw pointer to it; a collected callback would crash.
        self._callback = _JackShutdown(lambda _arg: self.on_gone())

    def start(self) -> bool:
        """Open and activate the watching client. True when watching; False (nothing opened) otherwise."""
        path = jack_symbol_library()
        if path is None:
            return False
        try:
            # RTLD_NOLOAD: the library rtmidi already uses, never a second copy loaded beside it.
            lib = ctypes.CDLL(str(path), mode=os.RTLD_NOLOAD | os.RTLD_NOW)
            lib.jack_client_open.restype = ctypes.c_void_p
            lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
            lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _JackShutdown, ctypes.c_void_p]
            lib.jack_activate.argtypes = [ctypes.c_void_p]
            lib.jack_client_close.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError):
            return False
        status = ctypes.c_int(0)
        client = lib.jack_client_open(self.name.encode(), _JACK_NO_START_SERVER, ctypes.byref(status))
        if not client:
            return False
        lib.jack_on_shutdown(client, self._callback, None)  # before activating, as libjack requires
        if lib.jack_activate(client) != 0:
            lib.jack_client_close(client)
            return False
        self._lib, self._client, self.library = lib, client, path
        return True

    def describe(self) -> str:
        """Which libjack it watches with, for the log: ``PipeWire's libjack (/usr/lib/...)``."""
        if self.library is None:
            return "no libjack"
        found = classify(self.library)
        return f"{found.owner} libjack ({found.path})"

    def close(self) -> None:
        """Close the watching client (safe when the server is gone: libjack cleans up)."""
        if self._client is not None:
            client, self._client = self._client, None
            self._lib.jack_client_close(client)
