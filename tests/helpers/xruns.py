"""When the JACK server reported an xrun (a cycle its graph did not finish in time), so a
benchmark can tell a message lost at one from a message lost anywhere else.

A JACK client of its own (:class:`XrunStamper`), in a process of its own, stamps each xrun
callback with CLOCK_MONOTONIC, the daemon's clock. Its own process, because it calls the
libjack the dynamic linker finds (the system's; PipeWire's under ``pw-jack``) through
``ctypes``, while the benchmark's clients go through python-rtmidi, whose libjack may be
the PyPI wheel's copy: two copies in one process do not mix
(``mididuet.daemon.ports.libjack``). Run as ``python -m tests.helpers.xruns`` it is that
process: it says "ready", and prints the stamps as JSON once its stdin closes.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

_JACK_NO_START_SERVER = 0x01  # JackOptions (jack/types.h)
_JackXRun = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
ROOT = Path(__file__).resolve().parents[2]


class XrunStamper:
    """The stamping process, started against the server ``env`` names; :meth:`stop` gives
    the stamps (ns, CLOCK_MONOTONIC), in order. As a context manager it never outlives
    the block: a block that ends before :meth:`stop` (an error) kills it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tests.helpers.xruns"], cwd=ROOT,
                                        env={**os.environ, **env}, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            self.kill()
            assert self.process.stderr is not None
            raise RuntimeError(f"the xrun stamper did not start: {self.process.stderr.read().strip()}")

    def __enter__(self) -> XrunStamper:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> list[int]:
        try:
            out, err = self.process.communicate(timeout=10)  # closing its stdin ends it
        finally:
            self.kill()
        if self.process.returncode != 0:
            raise RuntimeError(f"the xrun stamper failed (exit {self.process.returncode}): {err.strip()}")
        return sorted(json.loads(out.strip().splitlines()[-1]))


def near(stamps: Sequence[int], when: int, within_ns: int) -> bool:
    """Whether an xrun in the sorted ``stamps`` lies within ``within_ns`` of ``when``."""
    i = bisect.bisect_left(stamps, when - within_ns)
    return i < len(stamps) and stamps[i] <= when + within_ns


def main() -> int:
    name = ctypes.util.find_library("jack") or "libjack.so.0"
    lib = ctypes.CDLL(name)
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.jack_set_xrun_callback.argtypes = [ctypes.c_void_p, _JackXRun, ctypes.c_void_p]
    lib.jack_activate.argtypes = [ctypes.c_void_p]
    lib.jack_client_close.argtypes = [ctypes.c_void_p]
    status = ctypes.c_int(0)
    client = lib.jack_client_open(b"xrun-stamper", _JACK_NO_START_SERVER, ctypes.byref(status))
    if not client:
        print(f"no JACK client from {name} (status {status.value:#x})", file=sys.stderr)
        return 1
    stamps: list[int] = []

    def stamp(_arg: object) -> int:  # on libjack's notification thread: record only
        stamps.append(time.monotonic_ns())
        return 0

    callback = _JackXRun(stamp)  # kept referenced: libjack holds a raw pointer to it
    # Before activating, as libjack requires. Unchecked, a failure here would read as "no
    # xruns", the benchmark's evidence against an xrun.
    if lib.jack_set_xrun_callback(client, callback, None) != 0:
        lib.jack_client_close(client)
        print("could not register the xrun callback", file=sys.stderr)
        return 1
    if lib.jack_activate(client) != 0:
        lib.jack_client_close(client)
        print("could not activate the JACK client", file=sys.stderr)
        return 1
    print("ready", flush=True)
    sys.stdin.read()
    lib.jack_client_close(client)
    print(json.dumps(stamps), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
