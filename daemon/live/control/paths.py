"""Where the control socket lives, and how one daemon claims it.

The path is worked out the same way by ``mididuet run`` and by ``mididuet watch`` or
``status``, so neither needs telling (:func:`socket_path`):

1. ``$XDG_RUNTIME_DIR/mididuet/`` (a systemd user service and a desktop login both have
   it: a tmpfs of the user's own, 0700, emptied at logout);
2. without it (``su``, cron, a bare ssh), ``/run/user/$UID/mididuet/`` when logind made
   ``/run/user/$UID`` for this user (owned by them, 0700): the same place the service uses;
3. else ``/tmp/mididuet-$UID/``: /tmp is shared, so the directory must be ours, 0700 and no
   symlink, or it is refused (another user may have planted it).

The socket is ``control.sock`` in that directory (``--control`` names another, or a path).
The name is fixed, so a restarted service is found at the same path: the socket of a
killed run is left behind and replaced by the next one. Who may replace it is decided by
an ``flock`` on ``control.sock.lock`` held for the whole run (:class:`Claim`): its holder
owns the path, and a second daemon sees the lock taken (and the holder's pid in the file),
says so, and plays on without a socket. A lock rather than probing the socket: two
daemons starting at once cannot both find it stale and unlink each other's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from ...errors import MididuetError

SOCKET_NAME = "control.sock"
DIR_NAME = "mididuet"
OFF = "off"  # --control off: no socket
DIR_MODE = 0o700
LOGIND_ROOT = Path("/run/user")  # where logind makes each user's runtime directory
TMP = Path("/tmp")


class ControlPathError(MididuetError):
    """The socket's directory or path cannot be used safely."""


def runtime_base(environ: Mapping[str, str] | None = None, uid: int | None = None) -> Path:
    """The directory that holds mididuet's runtime directory (see the module's list)."""
    env = os.environ if environ is None else environ
    uid = os.getuid() if uid is None else uid
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"])
    logind = LOGIND_ROOT / str(uid)
    with contextlib.suppress(OSError):
        info = logind.lstat()
        if stat.S_ISDIR(info.st_mode) and info.st_uid == uid and not info.st_mode & 0o077:
            return logind
    return TMP


def runtime_dir(environ: Mapping[str, str] | None = None, uid: int | None = None) -> Path:
    """mididuet's runtime directory: ``BASE/mididuet``, or ``/tmp/mididuet-UID`` in /tmp."""
    uid = os.getuid() if uid is None else uid
    base = runtime_base(environ, uid)
    return base / (f"{DIR_NAME}-{uid}" if base == TMP else DIR_NAME)


def socket_name(value: str) -> None:
    """The check of ``--control``: a name, a path or ``off``, never empty."""
    if not value or value.endswith("/") or "\0" in value:
        raise ValueError(f"must be a socket's name, a path to one, or {OFF}, got {value!r}")


def socket_path(name: str | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The socket for ``--control NAME`` (a bare name in :func:`runtime_dir`, or a path with
    a slash), the default for None, or None for ``off``."""
    if name == OFF:
        return None
    if name and "/" in name:
        return Path(name).expanduser()
    return runtime_dir(environ) / (name or SOCKET_NAME)


def make_private_dir(path: Path) -> None:
    """Create ``path`` 0700 if absent, then check it is a directory of ours that nobody else
    may enter (not a symlink). Raises :class:`ControlPathError` naming what is wrong."""
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        pass
    except OSError as err:
        raise ControlPathError(f"cannot create {path}: {err.strerror}") from err
    check_private_dir(path)


def check_private_dir(path: Path) -> None:
    """Raise :class:`ControlPathError` unless ``path`` is a real directory owned by us with
    no access for group or others."""
    try:
        info = path.lstat()
    except OSError as err:
        raise ControlPathError(f"cannot use {path}: {err.strerror}") from err
    if not stat.S_ISDIR(info.st_mode):
        raise ControlPathError(f"{path} is not a directory (a symlink or a file): refusing to put the socket there")
    if info.st_uid != os.getuid():
        raise ControlPathError(f"{path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}): "
                               "refusing to put the socket there")
    if info.st_mode & 0o077:
        raise ControlPathError(f"{path} is open to others (mode {stat.S_IMODE(info.st_mode):o}, not 700): "
                               "refusing to put the socket there")


class SocketInUse(MididuetError):
    """Another daemon holds the socket's lock."""


class Claim:
    """The right to the socket path: an ``flock`` on ``PATH.lock``, held until :meth:`release`.

    :meth:`take` makes the directory (for a name in the runtime directory), takes the
    lock and removes a socket left by a run that was killed. Raises :class:`SocketInUse`
    when another process holds the lock, :class:`ControlPathError` when the place is unsafe.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def take(cls, path: Path, environ: Mapping[str, str] | None = None) -> Claim:
        if path.parent == runtime_dir(environ):
            make_private_dir(path.parent)
        else:
            check_private_dir(path.parent)  # a path given with --control: its directory must be private too
        lock = path.with_name(path.name + ".lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as err:
            raise ControlPathError(f"cannot open {lock}: {err.strerror}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SocketInUse(f"{path} is in use by another mididuet (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        claim = cls(path, fd)
        try:
            claim.remove_stale()
        except ControlPathError:
            claim.release(unlink=False)  # what is there is not ours
            raise
        return claim

    def remove_stale(self) -> None:
        """Remove a socket at the path (no live daemon holds the lock, so it is stale);
        anything else there is left alone and refused."""
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlPathError(f"{self.path} exists and is not a socket: remove it or choose --control NAME")
        self.path.unlink()

    def release(self, unlink: bool = True) -> None:
        """Remove the socket (``unlink``) and drop the lock. Safe to call twice."""
        if self._fd is None:
            return
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self._fd)
        self._fd = None
