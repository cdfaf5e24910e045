"""Which libjack python-rtmidi really calls, and whose it is: jackd2's, PipeWire's, or the
copy bundled in python-rtmidi's PyPI wheel (which cannot reach PipeWire's JACK).

:func:`rtmidi_libjack` finds the library the way the dynamic linker bound rtmidi's calls:
first the global scope (the program, ``LD_PRELOAD``, libraries loaded ``RTLD_GLOBAL``),
then the extension's own dependencies (its ``DT_NEEDED`` libjack, found through
``LD_LIBRARY_PATH`` as ``pw-jack`` sets it). Never "the first libjack in
``/proc/self/maps``": with PipeWire's preloaded beside the wheel's, that is the unused
copy, and calling into it crashes. Nothing here opens a JACK client; nothing blocks.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import rtmidi

PIPEWIRE_SOCKET = "pipewire-0"  # PipeWire's default remote, in its runtime directory
RTMIDI_BUILD_DEPS = "libjack-jackd2-dev libasound2-dev pkg-config g++"  # Debian/Ubuntu names


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


@dataclass(frozen=True)
class LibJack:
    """The libjack python-rtmidi uses."""

    path: Path
    bundled: bool  # python-rtmidi's own copy (the PyPI wheel's): it ignores pw-jack
    pipewire: bool  # PipeWire's (pw-jack, or PipeWire's libjack installed as the system's)

    @property
    def owner(self) -> str:
        """Whose it is, to put before "libjack"."""
        if self.bundled:
            return "python-rtmidi's bundled"
        return "PipeWire's" if self.pipewire else "the system's"


def rtmidi_extension() -> Path:
    """python-rtmidi's compiled module (it links libjack)."""
    return Path(rtmidi._rtmidi.__file__)  # type: ignore[attr-defined]


def _dladdr() -> Any:
    for name in (None, "libdl.so.2"):  # glibc >= 2.34 has dladdr in libc itself
        try:
            fn = ctypes.CDLL(name).dladdr
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        fn.restype = ctypes.c_int
        return fn
    return None


def library_of(address: int) -> Path | None:
    """The file of the loaded object that holds ``address`` (``dladdr``), or None."""
    dladdr = _dladdr()
    info = _DlInfo()
    if dladdr is None or not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    return Path(os.fsdecode(info.dli_fname))


def jack_symbol_library(symbol: str = "jack_client_open") -> Path | None:
    """The library python-rtmidi's ``symbol`` resolves to, or None (not Linux, no JACK)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        scopes = [ctypes.CDLL(None), ctypes.CDLL(str(rtmidi_extension()), mode=os.RTLD_NOLOAD | os.RTLD_NOW)]
    except (OSError, AttributeError):
        return None
    for scope in scopes:  # the linker's order: the global scope, then the extension's dependencies
        try:
            function = getattr(scope, symbol)
        except AttributeError:
            continue
        address = ctypes.cast(function, ctypes.c_void_p).value
        return library_of(address) if address else None
    return None


def classify(path: Path, site_packages: Path | None = None) -> LibJack:
    """Whose libjack ``path`` is. ``site_packages``: where python-rtmidi is installed."""
    where = site_packages or rtmidi_extension().parent.parent
    resolved = path.resolve()
    bundled = where.resolve() in resolved.parents
    return LibJack(resolved, bundled=bundled, pipewire=not bundled and "pipewire" in str(resolved))


def rtmidi_libjack() -> LibJack | None:
    """The libjack python-rtmidi calls, classified; None when it has none loaded."""
    path = jack_symbol_library()
    return None if path is None else classify(path)


def pipewire_socket(environ: dict[str, str] | os._Environ[str] | None = None) -> Path | None:
    """PipeWire's socket when one exists for this user (``$XDG_RUNTIME_DIR/pipewire-0``), else None."""
    env = os.environ if environ is None else environ
    name = env.get("PIPEWIRE_REMOTE") or PIPEWIRE_SOCKET
    directory = env.get("PIPEWIRE_RUNTIME_DIR") or env.get("XDG_RUNTIME_DIR")  # where PipeWire's clients look
    if not directory:
        return None
    candidate = Path(directory) / name
    try:
        return candidate if stat.S_ISSOCK(candidate.stat().st_mode) else None
    except OSError:
        return None


def rebuild_command(python: str = sys.executable) -> str:
    """The command that replaces the wheel's python-rtmidi by one built against the system's libjack."""
    try:
        pinned = f"python-rtmidi=={version('python-rtmidi')}"
    except PackageNotFoundError:
        pinned = "python-rtmidi"
    return (f"sudo apt-get install {RTMIDI_BUILD_DEPS} && {python} -m pip install --force-reinstall --no-deps "
            f"--no-binary python-rtmidi {pinned}")


def main(argv: list[str] | None = None) -> int:
    """``python -m mididuet.daemon.ports.libjack [--require-system]``: which libjack rtmidi calls.

    With ``--require-system``, exit 1 unless rtmidi has JACK and calls a libjack of the
    system's (jackd2's or PipeWire's), as ``make rtmidi-system`` checks after building.
    """
    args = sys.argv[1:] if argv is None else argv
    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        print(f"python-rtmidi {rtmidi.__file__} was built without JACK: is libjack-jackd2-dev installed?")
        return 1
    found = rtmidi_libjack()
    if found is None:
        print(f"python-rtmidi {rtmidi.__file__}: no libjack loaded")
        return 1
    print(f"python-rtmidi {Path(rtmidi.__file__).parent} calls {found.owner} libjack: {found.path}")
    return 1 if "--require-system" in args and found.bundled else 0


if __name__ == "__main__":
    sys.exit(main())
